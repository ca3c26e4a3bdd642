/**
 * A model folder as the repository reads it: its realpath inside the repository, and the files its config names
 * besides config and model files (a text pipeline's vocabulary, a generation model's Hugging Face files), each
 * confined to the repository (confined-path.ts) before the loader that reads it runs.
 *
 * Those loaders (src/pipelines, src/generation) open the path again themselves, so a file swapped for a symlink
 * out of the repository between this check and their read would still be read: closing that needs them to read
 * through readConfined() (a `read` parameter, as readModelConfig takes). The folder itself is fixed here as its
 * realpath, so only a file inside it, not the folder, could be swapped in that window.
 */
import * as path from 'node:path';
import { echo } from '../core/errors';
import { GenerationModel } from '../generation/generation-model';
import { TextClassificationPipeline } from '../pipelines/text-classification';
import type { GenerationConfig } from '../generation/generation-model';
import type { ModelConfig, TextPipelineConfig } from './model-config';
import { confine, configPath, realRoot, RepositoryEscape } from './confined-path';

export interface ModelFolder {
  /** The repository root's realpath. */
  root: string;
  /** The model folder's realpath, inside `root`. */
  dir: string;
}

/** The files GenerationModel.load and TextTokenizer.load read from a model folder (fixed names; the last two optional). */
const GENERATION_FILES = ['config.json', 'tokenizer.json', 'generation_config.json', 'tokenizer_config.json'];

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
const missing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

/** The model folder `name` of the repository, or why it cannot be read (it leads outside, or is gone). */
export async function openModelFolder(repositoryRoot: string, name: string): Promise<ModelFolder> {
  let root: string;
  try {
    root = await realRoot(repositoryRoot);
  } catch (err) {
    throw new Error(`model repository '${repositoryRoot}' cannot be read: ${message(err)}`);
  }
  try {
    return { root, dir: await confine(root, path.join(root, name), `model folder '${name}'`) };
  } catch (err) {
    if (err instanceof RepositoryEscape) throw err;
    throw new Error(`model folder '${name}' cannot be read: ${message(err)}`);
  }
}

/** Confines `file`; a missing one passes (its loader reports it, as before, or it is optional). */
async function confineIfPresent(folder: ModelFolder, file: string, what: string): Promise<void> {
  await confine(folder.root, file, what).catch((err: unknown) => {
    if (!missing(err)) throw err;
  });
}

/** The text pipeline and generation model `config` asks for; `reason` says why one cannot be served ('' when both can). */
export async function loadConfiguredParts(
  folder: ModelFolder,
  config: ModelConfig,
): Promise<{ textPipeline: TextClassificationPipeline | undefined; generation: GenerationModel | undefined; reason: string }> {
  const parts = { textPipeline: undefined as TextClassificationPipeline | undefined, generation: undefined as GenerationModel | undefined, reason: '' };
  try {
    if (config.text_pipeline) parts.textPipeline = await loadTextPipeline(folder, config.text_pipeline);
  } catch (err) {
    parts.reason = message(err);
  }
  try {
    if (config.generation) parts.generation = await loadGeneration(folder, config.generation);
  } catch (err) {
    parts.reason = message(err);
  }
  return parts;
}

async function loadTextPipeline(folder: ModelFolder, config: TextPipelineConfig): Promise<TextClassificationPipeline> {
  const given = config.tokenizer.vocab;
  const what = `text_pipeline.tokenizer.vocab ${echo(given, 200)}`;
  // The loader joins the vocabulary to the folder as configPath() does, so both name the same file.
  await confineIfPresent(folder, configPath(folder.dir, given, what), what);
  return TextClassificationPipeline.load(folder.dir, config);
}

async function loadGeneration(folder: ModelFolder, config: GenerationConfig): Promise<GenerationModel> {
  for (const file of GENERATION_FILES) await confineIfPresent(folder, path.join(folder.dir, file), `generation file '${file}'`);
  return GenerationModel.load(folder.dir, config);
}
