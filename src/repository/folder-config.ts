/**
 * Which config a model folder has and what it says: config.yaml (ours) or config.pbtxt (Triton's, converted),
 * never both (which one wins would be a guess, and a silent one).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { readConfined } from './confined-path';
import { CONFIG_FILE, readModelConfig, type ModelConfig } from './model-config';
import { readTritonConfigFile, TRITON_CONFIG_FILE } from './triton/triton-config-file';

export interface FolderConfig {
  config: ModelConfig;
  /** Settings accepted but not honoured, or honoured differently (from a config.pbtxt). */
  warnings: string[];
  /** The file the config came from (config.yaml also when the folder has none: all defaults). */
  file: typeof CONFIG_FILE | typeof TRITON_CONFIG_FILE;
}

/**
 * Throws with the reason the model cannot be served (parse errors, problems, both files present, a config that is
 * a symlink out of the repository). `root` is the repository's realRoot(): the config is read only from inside it.
 */
export async function readFolderConfig(root: string, dir: string, modelName: string): Promise<FolderConfig> {
  const [hasYaml, hasPbtxt] = await Promise.all([exists(path.join(dir, CONFIG_FILE)), exists(path.join(dir, TRITON_CONFIG_FILE))]);
  if (hasYaml && hasPbtxt) {
    throw new Error(`both ${CONFIG_FILE} and ${TRITON_CONFIG_FILE} are present: keep one (\`tensorgate models convert\` turns a ${TRITON_CONFIG_FILE} into a ${CONFIG_FILE})`);
  }
  const read = async (file: string) => (await readConfined(root, file, `config file '${path.basename(file)}'`)).toString('utf8');
  if (!hasPbtxt) return { config: await readModelConfig(path.join(dir, CONFIG_FILE), modelName, read), warnings: [], file: CONFIG_FILE };
  const converted = await readTritonConfigFile(path.join(dir, TRITON_CONFIG_FILE), modelName, read);
  if (!converted.config) throw new Error(`${TRITON_CONFIG_FILE} cannot be served: ${converted.problems.join('; ')}`);
  return { config: converted.config, warnings: converted.warnings, file: TRITON_CONFIG_FILE };
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}
