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
 * versions: { "2": { sha256: "<64 hex digits: sha256sum 2/model.onnx>" } }   # checked before loading
 * ```
 */
import * as fs from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DATA_TYPE_NAMES } from '../core/dtype';
import { MAX_TIMER_MS } from '../core/timers';
import { breakerConfigSchema } from '../resilience/breaker-config';
import { generationConfigSchema } from '../generation/generation-model';
import { warmupSchema } from './warmup';

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

const versionFiles = z.strictObject({
  sha256: z
    .string({ error: 'must be a string of 64 hex digits (quote it in YAML)' })
    .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits, the SHA-256 of the version\'s model.onnx (as sha256sum prints it)')
    .transform((s) => s.toLowerCase())
    .optional(),
});

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

const executionConfig = z.strictObject({
  /**
   * auto: the version starts on the inference workers and moves inline onto the main thread when its measured
   * runs take at most --inline-max-run-us (cheap models: no hand-off between threads); worker: always on the workers.
   */
  placement: z.enum(['auto', 'worker']).default('auto'),
});

const dynamicBatching = z.strictObject({
  /** Batch sizes sent as soon as they can be formed (rows). */
  preferred_batch_sizes: z.array(z.number().int().positive()).default([]),
  /** Longest any request waits for others to join its batch, in microseconds. */
  max_queue_delay_us: z.number().int().min(0).default(0),
});

const queueConfig = z.strictObject({
  /** Most waiting requests; more are refused at once with RESOURCE_EXHAUSTED. 0 = unbounded. */
  max_size: z.number().int().min(0).default(0),
  /** Priority levels 1 (highest) .. N. */
  priority_levels: z.number().int().min(1).max(16).default(1),
  default_priority: z.number().int().min(1).default(1),
  /** Queue timeout for requests that set none, in microseconds; 0 = none (the gRPC deadline still applies). */
  default_timeout_us: z.number().int().min(0).default(0),
});

const resultCacheConfig = z.strictObject({
  /** Cache this model's results (only ever for `deterministic: true` models, and when the server cache is on). */
  enabled: z.boolean().default(true),
  /** How long a result stays valid. */
  ttl_ms: z.number().int().positive().default(300_000),
});

const canaryConfig = z.strictObject({
  /** Version -> weight. The heaviest is the stable version, which is never rolled back. */
  weights: z.record(z.string().regex(/^[0-9]+$/, 'a version number'), z.number().int().min(0).max(1_000_000)).refine((w) => Object.values(w).some((x) => x > 0), 'at least one weight must be above 0'),
  rollback: z
    .strictObject({
      /** Server-side failure rate over the window above which a canary is rolled back. */
      max_error_rate: z.number().min(0).max(1).default(0.2),
      /** p99 latency in ms over the window above which a canary is rolled back; 0 = no latency rule. */
      max_p99_ms: z.number().min(0).default(0),
      window_ms: z.number().int().positive().max(MAX_TIMER_MS).default(30_000),
      /** Requests of the canary in the window before either rule is applied. */
      min_requests: z.number().int().positive().default(20),
    })
    .default(() => ({ max_error_rate: 0.2, max_p99_ms: 0, window_ms: 30_000, min_requests: 20 })),
});

export const modelConfigSchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().default(''),
  platform: z.literal('onnxruntime').default('onnxruntime'),
  version_policy: versionPolicy.default({ latest: 1 }),
  inputs: z.array(tensorDecl).optional(),
  outputs: z.array(tensorDecl).optional(),
  session: sessionConfig.default(() => sessionConfig.parse({})),
  execution: executionConfig.default(() => executionConfig.parse({})),
  text_pipeline: textPipeline.optional(),
  /** Present: a decoder language model served by Generate (generation/generation-model.ts). */
  generation: generationConfigSchema.optional(),
  /** Same inputs always give the same outputs: allows result caching. */
  deterministic: z.boolean().default(false),
  /** Most rows (dim 0) per execution and per request; 0 = the model has no batch dimension. */
  max_batch_size: z.number().int().min(0).default(0),
  /** Present: concurrent requests are merged along dim 0 into executions of up to max_batch_size rows. */
  dynamic_batching: dynamicBatching.optional(),
  queue: queueConfig.default(() => queueConfig.parse({})),
  /** Concurrent executions of this model (instances); 0 = one per worker. */
  instance_count: z.number().int().min(0).default(0),
  /** An execution running longer answers DEADLINE_EXCEEDED (a server fault); 0 = no limit. */
  execution_timeout_ms: z.number().int().min(0).max(MAX_TIMER_MS).default(0),
  result_cache: resultCacheConfig.default(() => resultCacheConfig.parse({})),
  circuit_breaker: breakerConfigSchema.default(() => breakerConfigSchema.parse({})),
  /** Runs each new session makes before its version takes requests (repository/warmup.ts). */
  warmup: warmupSchema.optional(),
  /** Requests that name no version are split between versions by weight; canaries roll back on their own (serving/canary-router.ts). */
  canary: canaryConfig.optional(),
  /**
   * Per version folder: what its files must be. `sha256` is the SHA-256 of <version>/model.onnx (64 hex digits, as
   * `sha256sum 2/model.onnx` or `tensorgate models hash FOLDER` print it); it is checked before every load and
   * reload, and a version whose file does not match stays UNAVAILABLE and is never given to ONNX Runtime
   * (repository/model-file.ts). Versions without an entry load unchecked.
   *   versions:
   *     "2": { sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" }
   */
  versions: z.record(z.string().regex(/^[1-9][0-9]*$/, 'a version number (a version folder name, 1 or more)'), versionFiles).default({}),
}).superRefine((c, ctx) => {
  if (c.dynamic_batching && c.max_batch_size === 0) {
    ctx.addIssue({ code: 'custom', path: ['dynamic_batching'], message: 'needs max_batch_size > 0' });
  }
  for (const p of c.dynamic_batching?.preferred_batch_sizes ?? []) {
    if (p > c.max_batch_size) ctx.addIssue({ code: 'custom', path: ['dynamic_batching', 'preferred_batch_sizes'], message: `${p} is larger than max_batch_size ${c.max_batch_size}` });
  }
  if (c.generation && (c.text_pipeline || c.dynamic_batching)) {
    ctx.addIssue({ code: 'custom', path: ['generation'], message: 'a generation model batches its own decode steps: remove text_pipeline and dynamic_batching' });
  }
  if (c.generation && c.generation.default_max_tokens > c.generation.max_tokens) {
    ctx.addIssue({ code: 'custom', path: ['generation', 'default_max_tokens'], message: `${c.generation.default_max_tokens} is above max_tokens ${c.generation.max_tokens}` });
  }
  if (c.queue.default_priority > c.queue.priority_levels) {
    ctx.addIssue({ code: 'custom', path: ['queue', 'default_priority'], message: `${c.queue.default_priority} is above priority_levels ${c.queue.priority_levels}` });
  }
});

export type ModelConfig = z.infer<typeof modelConfigSchema>;
export type VersionPolicy = z.infer<typeof versionPolicy>;
export type TextPipelineConfig = z.infer<typeof textPipeline>;
export type TensorDecl = z.infer<typeof tensorDecl>;
export type CanaryConfig = z.infer<typeof canaryConfig>;

export const CONFIG_FILE = 'config.yaml';

/** How a config file's text is read: fs by default, confined to the repository when the repository reads it. */
export type ReadText = (file: string) => Promise<string>;

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
 * describes the tensors); an unreadable or invalid one throws with every problem listed. The repository reads
 * through `read` (confined-path.ts readConfined: never a file outside it).
 */
export async function readModelConfig(file: string, modelName: string, read: ReadText = (f) => fs.readFile(f, 'utf8')): Promise<ModelConfig> {
  let text: string;
  try {
    text = await read(file);
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
