/**
 * The schema of models/<name>/config.yaml: one validated definition, defaults filled in, unknown keys
 * rejected by name (a misspelt key silently ignored is a production incident waiting to happen).
 *
 * @example
 * ```yaml
 * description: Small dense network
 * version_policy: { latest: 2 }        # or { all: true } or { specific: [1, 3] }
 * inputs:  [{ name: input, dtype: FP32, shape: [-1, 64] }]
 * session: { intra_op_threads: 1, graph_optimization_level: all, execution_providers: [cpu] }
 * deterministic: true
 * ```
 */
import * as fs from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DATA_TYPE_NAMES } from '../core/dtype';

const tensorDecl = z.strictObject({
  name: z.string().min(1),
  dtype: z.enum(DATA_TYPE_NAMES as [string, ...string[]]),
  /** -1 = any size. Pins what the session reports: a fixed dim here narrows a symbolic one there. */
  shape: z.array(z.number().int().min(-1)).optional(),
});

const versionPolicy = z.union([
  z.strictObject({ latest: z.number().int().positive() }),
  z.strictObject({ all: z.literal(true) }),
  z.strictObject({ specific: z.array(z.number().int().nonnegative()).min(1) }),
]);

export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'webgpu'] as const;

const sessionConfig = z.strictObject({
  /** 0 = the server's default share of the cores per worker. */
  intra_op_threads: z.number().int().min(0).default(0),
  inter_op_threads: z.number().int().min(0).default(0),
  graph_optimization_level: z.enum(['disabled', 'basic', 'extended', 'all']).default('all'),
  execution_mode: z.enum(['sequential', 'parallel']).default('sequential'),
  /** Tried in order; `cpu` is always available. */
  execution_providers: z.array(z.enum(EXECUTION_PROVIDERS)).min(1).default(['cpu']),
});

const textPipeline = z.strictObject({
  kind: z.literal('text_classification'),
  tokenizer: z.strictObject({
    type: z.literal('word_vocab'),
    /** JSON object word -> id, relative to the model folder; id 0 pads, id 1 is the unknown word. */
    vocab: z.string().min(1),
    lowercase: z.boolean().default(true),
    max_tokens: z.number().int().positive().default(128),
  }),
  /** The INT64 [batch, tokens] input that receives token ids. */
  input: z.string().min(1),
  /** The [batch, labels] output holding a score per label. */
  output: z.string().min(1),
  labels: z.array(z.string().min(1)).min(2),
});

export const modelConfigSchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().default(''),
  platform: z.literal('onnxruntime').default('onnxruntime'),
  version_policy: versionPolicy.default({ latest: 1 }),
  inputs: z.array(tensorDecl).optional(),
  outputs: z.array(tensorDecl).optional(),
  session: sessionConfig.default(() => sessionConfig.parse({})),
  text_pipeline: textPipeline.optional(),
  /** Same inputs always give the same outputs: allows result caching. */
  deterministic: z.boolean().default(false),
});

export type ModelConfig = z.infer<typeof modelConfigSchema>;
export type VersionPolicy = z.infer<typeof versionPolicy>;
export type TextPipelineConfig = z.infer<typeof textPipeline>;
export type TensorDecl = z.infer<typeof tensorDecl>;

export const CONFIG_FILE = 'config.yaml';

/** Formats zod issues as "path: problem" lines a person can act on. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      if (issue.code === 'unrecognized_keys') {
        return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
      }
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * Reads and validates a model's config. A missing file means "all defaults" (the session's metadata
 * describes the tensors); an unreadable or invalid one throws with every problem listed.
 */
export async function readModelConfig(file: string, modelName: string): Promise<ModelConfig> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return modelConfigSchema.parse({});
    throw new Error(`cannot read ${CONFIG_FILE}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    throw new Error(`${CONFIG_FILE} is not valid YAML: ${(err as Error).message}`);
  }
  const parsed = modelConfigSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`invalid ${CONFIG_FILE}: ${describeIssues(parsed.error)}`);
  if (parsed.data.name !== undefined && parsed.data.name !== modelName) {
    throw new Error(`invalid ${CONFIG_FILE}: name '${parsed.data.name}' does not match the folder name '${modelName}'`);
  }
  return parsed.data;
}
