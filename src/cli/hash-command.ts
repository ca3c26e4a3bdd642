/**
 * `tensorgate models hash PATH`: the sha256 of each version's model.onnx in a model folder, printed as the
 * config.yaml `versions:` section to paste (repository/model-config.ts), so a server refuses any other bytes.
 * Offline: it reads the files only. Digests are quoted: an all-digit one would otherwise be a YAML number.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { MODEL_FILE } from '../repository/model-repository';
import { sha256Of } from '../repository/model-file';
import { listVersionFolders } from '../repository/version-folders';

export async function hashCommand(folder: string | undefined): Promise<void> {
  if (!folder) throw new Error(`usage: tensorgate models hash PATH (a model folder holding <version>/${MODEL_FILE})`);
  const versions = (await listVersionFolders(folder)).sort((a, b) => a - b);
  if (versions.length === 0) throw new Error(`no version folders (positive integers holding ${MODEL_FILE}) in '${folder}'`);
  const lines = [`# sha256 of each version's ${MODEL_FILE} in ${folder}, by \`tensorgate models hash\`; paste into its config.yaml`, 'versions:'];
  for (const v of versions) {
    const file = path.join(folder, String(v), MODEL_FILE);
    let handle;
    try {
      handle = await fs.open(file, 'r');
    } catch (err) {
      lines.push(`  # "${v}": no ${MODEL_FILE} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      continue;
    }
    try {
      lines.push(`  "${v}": { sha256: "${await sha256Of(handle)}" }`);
    } finally {
      await handle.close();
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
