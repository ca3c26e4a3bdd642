/**
 * Triton's ModelConfig (parsed from config.pbtxt) -> the raw object `modelConfigSchema` validates, with every
 * field either mapped, reported as a warning (accepted but not honoured, or honoured differently) or reported as
 * a problem (the model cannot be served as Triton would serve it). Nothing is dropped silently: a Triton user
 * moving a repository over must be able to read, from the warnings alone, where tensorgate behaves differently.
 *
 * The reverse (a loaded model -> Triton's ModelConfig, for tritonclient's get_model_config) is triton-export.ts.
 */
import { DATA_TYPE_NAMES, type DataTypeName } from '../../core/dtype';
import { describeIssues, modelConfigSchema, type ModelConfig } from '../model-config';
import { IGNORED_TRITON_FIELDS, REFUSED_TRITON_FIELDS } from './triton-schema';

export { tritonConfigFromModel, type TritonExportOptions } from './triton-export';

/** Triton's DataType enum names (TYPE_FP32 ...), as in model_config.proto. */
export type TritonDataType = `TYPE_${DataTypeName}` | 'TYPE_INVALID';

export interface TritonTensor {
  name?: string;
  data_type?: TritonDataType;
  format?: 'FORMAT_NONE' | 'FORMAT_NHWC' | 'FORMAT_NCHW';
  /** Without the batch dimension when max_batch_size > 0. */
  dims?: number[];
  reshape?: { shape?: number[] };
  is_shape_tensor?: boolean;
  allow_ragged_batch?: boolean;
  optional?: boolean;
  label_filename?: string;
}

export interface TritonQueuePolicy {
  timeout_action?: 'REJECT' | 'DELAY';
  default_timeout_microseconds?: number;
  allow_timeout_override?: boolean;
  max_queue_size?: number;
}

export interface TritonDynamicBatching {
  preferred_batch_size?: number[];
  max_queue_delay_microseconds?: number;
  preserve_ordering?: boolean;
  priority_levels?: number;
  default_priority_level?: number;
  default_queue_policy?: TritonQueuePolicy;
  priority_queue_policy?: Record<string, TritonQueuePolicy>;
}

export interface TritonInstanceGroup {
  name?: string;
  count?: number;
  gpus?: number[];
  kind?: 'KIND_AUTO' | 'KIND_GPU' | 'KIND_CPU' | 'KIND_MODEL';
  profile?: string[];
  passive?: boolean;
  host_policy?: string;
}

export interface TritonVersionPolicy {
  latest?: { num_versions?: number };
  all?: Record<string, never>;
  specific?: { versions?: number[] };
}

/** inference.ModelConfig as plain data: the fields of proto/inference/model_config.proto, snake_case. */
export interface TritonModelConfig {
  name?: string;
  platform?: string;
  backend?: string;
  runtime?: string;
  version_policy?: TritonVersionPolicy;
  max_batch_size?: number;
  input?: TritonTensor[];
  output?: TritonTensor[];
  instance_group?: TritonInstanceGroup[];
  default_model_filename?: string;
  dynamic_batching?: TritonDynamicBatching;
  parameters?: Record<string, { string_value?: string }>;
  model_warmup?: TritonWarmup[];
  response_cache?: { enable?: boolean };
}

export interface TritonConversion {
  /** The config.yaml equivalent (only what the Triton config sets; the schema fills the rest). */
  raw: Record<string, unknown>;
  /** Validated, defaults filled in; undefined when there are problems. */
  config: ModelConfig | undefined;
  warnings: string[];
  problems: string[];
}

export interface ConvertOptions {
  /** The model folder's name: a `name` that differs is a problem, as in Triton. */
  modelName?: string;
  /** Paths of Triton-only fields the parser skipped. */
  unsupported?: readonly string[];
}

const THREAD_PARAMETERS: Record<string, 'intra_op_threads' | 'inter_op_threads'> = {
  intra_op_thread_count: 'intra_op_threads',
  inter_op_thread_count: 'inter_op_threads',
};

/** Triton's ModelWarmup sample (model_config.proto). */
export interface TritonWarmup {
  name?: string;
  batch_size?: number;
  count?: number;
  inputs?: Record<string, { data_type?: string; dims?: number[]; zero_data?: boolean; random_data?: boolean; input_data_file?: string }>;
}

/**
 * model_warmup -> config.yaml `warmup`: Triton's dims leave out the batch dim of a batching model (batch_size
 * rows, at least 1, are put in front); input_data_file is relative to the model folder's warmup/ subfolder;
 * count 0 means once.
 */
function warmup(samples: TritonWarmup[], batched: boolean, problems: string[]): unknown[] {
  return samples.map((w, i) => {
    const name = w.name || `warmup${i}`;
    const inputs: Record<string, unknown> = {};
    for (const [input, x] of Object.entries(w.inputs ?? {})) {
      const dtype = x.data_type?.replace(/^TYPE_/, '');
      if (!dtype || !DATA_TYPE_NAMES.includes(dtype as DataTypeName)) problems.push(`model_warmup '${name}' input '${input}': data_type is required (TYPE_FP32, ...)`);
      const dims = x.dims ?? [];
      const shape = batched ? [Math.max(w.batch_size ?? 1, 1), ...dims] : dims;
      const data = x.input_data_file ? { data: 'file', file: `warmup/${x.input_data_file}` } : { data: x.random_data ? 'random' : 'zero' };
      inputs[input] = { dtype, shape, ...data };
    }
    return { name, count: Math.max(w.count ?? 1, 1), inputs };
  });
}

export function convertTritonConfig(t: TritonModelConfig, options: ConvertOptions = {}): TritonConversion {
  const warnings: string[] = [];
  const problems: string[] = [];
  const raw: Record<string, unknown> = {};

  for (const p of options.unsupported ?? []) {
    const top = p.split(/[.[]/)[0];
    const leaf = p.split('.').pop()!.replace(/\[.*$/, '');
    if (p === top && REFUSED_TRITON_FIELDS[top]) problems.push(`${p} is not supported: ${REFUSED_TRITON_FIELDS[top]}`);
    else warnings.push(`${p} is ignored: ${IGNORED_TRITON_FIELDS[leaf] ?? 'tensorgate does not support it'}`);
  }

  if (t.name) {
    if (options.modelName !== undefined && t.name !== options.modelName) problems.push(`name '${t.name}' does not match the folder name '${options.modelName}'`);
    raw.name = t.name;
  }
  if (t.platform && t.platform !== 'onnxruntime_onnx') problems.push(`platform '${t.platform}' is not served: tensorgate serves ONNX models (platform "onnxruntime_onnx" / backend "onnxruntime") only`);
  if (t.backend && t.backend !== 'onnxruntime') problems.push(`backend '${t.backend}' is not served: tensorgate runs ONNX models in ONNX Runtime only (backend "onnxruntime")`);
  if (t.runtime) warnings.push(`runtime '${t.runtime}' is ignored: models run in tensorgate's own ONNX Runtime`);
  if (t.default_model_filename && t.default_model_filename !== 'model.onnx') {
    problems.push(`default_model_filename '${t.default_model_filename}' is not supported: tensorgate loads <version>/model.onnx; rename the file and remove the setting`);
  }

  const mbs = t.max_batch_size;
  if (mbs === undefined) {
    warnings.push('max_batch_size is not set: served as 0 (each request runs alone, with the shape it has; no batching), where Triton\'s auto-complete may pick a batch size; set it to be explicit');
  } else if (mbs < 0) problems.push(`max_batch_size ${mbs} must be 0 or more`);
  raw.max_batch_size = Math.max(mbs ?? 0, 0);
  const batched = (mbs ?? 0) > 0;

  if (t.input?.length) raw.inputs = t.input.map((x, i) => tensorDecl('input', x, i, batched, warnings, problems));
  if (t.output?.length) raw.outputs = t.output.map((x, i) => tensorDecl('output', x, i, batched, warnings, problems));
  if (t.dynamic_batching) dynamicBatching(t.dynamic_batching, batched, raw, warnings, problems);
  if (t.instance_group?.length) raw.instance_count = instanceCount(t.instance_group, warnings, problems);
  const policy = versionPolicy(t.version_policy);
  if (policy) raw.version_policy = policy;
  // Triton caches only with `response_cache { enable: true }`; tensorgate caches only deterministic models.
  raw.deterministic = t.response_cache?.enable === true;
  const session = parameters(t.parameters ?? {}, warnings, problems);
  if (Object.keys(session).length) raw.session = session;
  if (t.model_warmup?.length) raw.warmup = warmup(t.model_warmup, batched, problems);

  let config: ModelConfig | undefined;
  if (problems.length === 0) {
    const parsed = modelConfigSchema.safeParse(raw);
    if (parsed.success) config = parsed.data;
    else problems.push(`as a tensorgate config: ${describeIssues(parsed.error)}`);
  }
  return { raw, config, warnings, problems };
}

function tensorDecl(kind: 'input' | 'output', x: TritonTensor, i: number, batched: boolean, warnings: string[], problems: string[]) {
  const where = `${kind} '${x.name || `[${i}]`}'`;
  if (!x.name) problems.push(`${kind}[${i}] has no name`);
  const dtype = x.data_type?.replace(/^TYPE_/, '');
  if (!dtype || !DATA_TYPE_NAMES.includes(dtype as DataTypeName)) problems.push(`${where}: data_type is required (TYPE_FP32, TYPE_INT64, ...)`);
  const decl: Record<string, unknown> = { name: x.name ?? '', dtype };
  // Triton's dims leave out the batch dimension of a batching model; ours are the model's full shape.
  if (x.dims) decl.shape = batched ? [-1, ...x.dims] : [...x.dims];
  else problems.push(`${where}: dims are required`);
  if (x.reshape && !sameDims(x.reshape.shape ?? [], x.dims ?? [])) {
    problems.push(`${where}: reshape is not supported (tensors reach the model with the shape the client sends); declare dims as the model's own shape and reshape in the client`);
  }
  if (x.is_shape_tensor) problems.push(`${where}: is_shape_tensor is a TensorRT feature; ONNX models have no shape tensors`);
  if (x.format && x.format !== 'FORMAT_NONE') warnings.push(`${where}: format ${x.format} is not kept (it is informational in Triton; the layout is the model's)`);
  if (x.optional) warnings.push(`${where} is optional in Triton, but tensorgate needs every input in each request`);
  if (x.allow_ragged_batch) warnings.push(`${where}: allow_ragged_batch is not supported: requests are batched together only when their shapes past dim 0 match`);
  if (x.label_filename) warnings.push(`${where}: label_filename '${x.label_filename}' is ignored: the classification extension is not supported, the output is returned as a tensor`);
  return decl;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function dynamicBatching(d: TritonDynamicBatching, batched: boolean, raw: Record<string, unknown>, warnings: string[], problems: string[]): void {
  if (!batched) {
    problems.push('dynamic_batching needs max_batch_size > 0 (Triton refuses it too)');
    return;
  }
  raw.dynamic_batching = { preferred_batch_sizes: d.preferred_batch_size ?? [], max_queue_delay_us: d.max_queue_delay_microseconds ?? 0 };
  const queue: Record<string, number> = {};
  if (d.priority_levels) {
    queue.priority_levels = d.priority_levels;
    if (d.default_priority_level) queue.default_priority = d.default_priority_level;
    else warnings.push('dynamic_batching.default_priority_level is not set: requests without a priority get level 1 (the highest)');
  } else if (d.default_priority_level) {
    warnings.push(`dynamic_batching.default_priority_level ${d.default_priority_level} is ignored without priority_levels`);
  }
  const q = d.default_queue_policy;
  if (q) {
    if (q.max_queue_size) queue.max_size = q.max_queue_size;
    if (q.default_timeout_microseconds) {
      queue.default_timeout_us = q.default_timeout_microseconds;
      if (!q.allow_timeout_override) warnings.push('default_queue_policy.allow_timeout_override is false, but a request\'s own timeout is honoured (as if it were true)');
    }
    if (q.timeout_action === 'DELAY') warnings.push('default_queue_policy.timeout_action DELAY is not supported: a request whose queue timeout passes is rejected (REJECT)');
  }
  if (d.preserve_ordering) warnings.push('dynamic_batching.preserve_ordering is ignored: each request is answered as soon as its batch finishes');
  const levels = Object.keys(d.priority_queue_policy ?? {});
  if (levels.length) warnings.push(`dynamic_batching.priority_queue_policy (level${levels.length > 1 ? 's' : ''} ${levels.join(', ')}) is ignored: default_queue_policy applies to every level`);
  if (Object.keys(queue).length) raw.queue = queue;
}

/**
 * The instances Triton would create, summed. GPU groups run on the CPU here: refusing them would make most Triton
 * repositories (written with KIND_GPU by habit) unservable on a CPU host, and CUDA is chosen in config.yaml.
 */
function instanceCount(groups: readonly TritonInstanceGroup[], warnings: string[], problems: string[]): number {
  let total = 0;
  groups.forEach((g, i) => {
    const where = `instance_group[${i}]`;
    const count = g.count ?? 1;
    if (count < 1) problems.push(`${where}.count ${count} must be at least 1`);
    const kind = g.kind ?? 'KIND_AUTO';
    const gpus = g.gpus ?? [];
    const n = kind === 'KIND_GPU' && gpus.length > 0 ? count * gpus.length : count;
    if (g.passive) {
      warnings.push(`${where} is passive: its ${n} instance(s) are not created (they would take no requests)`);
      return;
    }
    total += n;
    if (kind === 'KIND_GPU' || kind === 'KIND_MODEL' || gpus.length > 0) {
      warnings.push(`${where} (${kind}${gpus.length ? `, gpus [${gpus.join(', ')}]` : ''}) runs as ${n} CPU instance(s): tensorgate runs Triton configs on the CPU; for CUDA write a config.yaml with session.execution_providers: [cuda, cpu]`);
    }
    if (g.profile?.length) warnings.push(`${where}.profile is ignored (a TensorRT setting)`);
    if (g.host_policy) warnings.push(`${where}.host_policy '${g.host_policy}' is ignored`);
  });
  return total;
}

function versionPolicy(p: TritonVersionPolicy | undefined) {
  if (p?.latest) return { latest: p.latest.num_versions ?? 0 };
  if (p?.all) return { all: true };
  if (p?.specific) return { specific: p.specific.versions ?? [] };
  return undefined; // Triton's default, latest 1, is ours too
}

/** ONNX Runtime backend parameters we apply; any other key is reported, never dropped silently. */
function parameters(params: Record<string, { string_value?: string }>, warnings: string[], problems: string[]): Record<string, unknown> {
  const session: Record<string, unknown> = {};
  for (const [key, p] of Object.entries(params)) {
    const value = p.string_value ?? '';
    if (key in THREAD_PARAMETERS) {
      if (!/^\d+$/.test(value)) problems.push(`parameters '${key}' must be a whole number of threads, not '${value}'`);
      else session[THREAD_PARAMETERS[key]] = Number(value);
    } else if (key === 'execution_mode') {
      if (value === '0') session.execution_mode = 'sequential';
      else if (value === '1') session.execution_mode = 'parallel';
      else problems.push(`parameters 'execution_mode' must be "0" (sequential) or "1" (parallel), not '${value}'`);
    } else {
      warnings.push(`parameters '${key}' is ignored: tensorgate applies only intra_op_thread_count, inter_op_thread_count and execution_mode`);
    }
  }
  return session;
}
