/** Reading the Hugging Face JSON files of a model folder, with errors that name the file. */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** The parsed file; undefined when `optional` and it does not exist. */
export async function readJson(file: string, optional = false): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${path.basename(file)} cannot be read: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path.basename(file)} is not valid JSON: ${(err as Error).message}`);
  }
}
