/**
 * Reads a config.pbtxt from disk and converts it: the one entry point the repository and
 * `tensorgate models convert` share, so both report the same warnings and problems.
 */
import * as fs from 'node:fs/promises';
import type { ReadText } from '../model-config';
import { PbtxtError } from './pbtxt';
import { convertTritonConfig, type TritonConversion, type TritonModelConfig } from './triton-config';
import { parseTritonConfigText } from './triton-schema';

export const TRITON_CONFIG_FILE = 'config.pbtxt';

export interface TritonConfigFile extends TritonConversion {
  /** The parsed Triton ModelConfig (only the fields the text sets). */
  triton: TritonModelConfig;
}

/**
 * Throws when the file cannot be read or parsed (the message names file:line:col); problems are returned.
 * config.pbtxt has no field for a model file's sha256 (config.yaml's `versions`); see the README.
 */
export async function readTritonConfigFile(file: string, modelName: string | undefined, read: ReadText = (f) => fs.readFile(f, 'utf8')): Promise<TritonConfigFile> {
  let text: string;
  try {
    text = await read(file);
  } catch (err) {
    throw new Error(`cannot read ${TRITON_CONFIG_FILE}: ${(err as Error).message}`);
  }
  let parsed;
  try {
    parsed = parseTritonConfigText(text, TRITON_CONFIG_FILE);
  } catch (err) {
    if (err instanceof PbtxtError) throw new Error(`invalid ${TRITON_CONFIG_FILE}: ${err.message}`);
    throw err;
  }
  const triton = parsed.message as TritonModelConfig;
  return { triton, ...convertTritonConfig(triton, { modelName, unsupported: parsed.unsupported }) };
}
