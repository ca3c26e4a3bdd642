/**
 * A loaded model -> Triton's ModelConfig (keys and enum names as in proto/inference/model_config.proto), so
 * tritonclient's get_model_config (the v2 ModelConfig RPC and REST /v2/models/<name>/config) shows what tensorgate
 * actually serves: the READY version's tensors, the effective batching, queue, instances and caching.
 */
import type { TensorSpec } from '../../core/tensor';
import type { ModelConfig } from '../model-config';
import type { TritonInstanceGroup, TritonModelConfig, TritonQueuePolicy, TritonTensor, TritonVersionPolicy } from './triton-config';

export interface TritonExportOptions {
  name: string;
  config: ModelConfig;
  /** The READY version's tensors as the session reports them; the config's declarations when none is READY. */
  inputs?: readonly TensorSpec[];
  outputs?: readonly TensorSpec[];
  /** Instances when the config says 0 (one per worker): the server's worker count. */
  defaultInstanceCount?: number;
  /** False when the server's result cache is off (cache-max-bytes 0): no model caches then. */
  cacheEnabled?: boolean;
}

/** Full ModelConfig with the fields this produces always present (what a client reading it relies on). */
export type ExportedTritonConfig = Required<Pick<TritonModelConfig, 'name' | 'platform' | 'backend' | 'max_batch_size' | 'input' | 'output' | 'instance_group' | 'version_policy' | 'response_cache' | 'parameters' | 'default_model_filename'>> &
  Pick<TritonModelConfig, 'dynamic_batching'>;

export function tritonConfigFromModel(o: TritonExportOptions): ExportedTritonConfig {
  const c = o.config;
  const batched = c.max_batch_size > 0;
  const tensors = (specs: readonly TensorSpec[] | undefined, decls: ModelConfig['inputs']): TritonTensor[] =>
    (specs ?? (decls ?? []).map((d) => ({ name: d.name, dtype: d.dtype, shape: d.shape ?? [] }))).map((s) => ({
      name: s.name,
      data_type: `TYPE_${s.dtype}` as TritonTensor['data_type'],
      // Triton's dims leave out the batch dimension of a batching model.
      dims: batched && s.shape.length > 0 ? s.shape.slice(1) : [...s.shape],
    }));
  const instances = c.instance_count || o.defaultInstanceCount || 1;
  const group: TritonInstanceGroup = { name: o.name, kind: 'KIND_CPU', count: instances, gpus: [], profile: [], passive: false, host_policy: '' };
  const parameters: Record<string, { string_value: string }> = {
    execution_mode: { string_value: c.session.execution_mode === 'parallel' ? '1' : '0' },
  };
  if (c.session.intra_op_threads) parameters.intra_op_thread_count = { string_value: String(c.session.intra_op_threads) };
  if (c.session.inter_op_threads) parameters.inter_op_thread_count = { string_value: String(c.session.inter_op_threads) };
  const out: ExportedTritonConfig = {
    name: o.name,
    platform: 'onnxruntime_onnx',
    backend: 'onnxruntime',
    version_policy: versionPolicy(c.version_policy),
    max_batch_size: c.max_batch_size,
    input: tensors(o.inputs, c.inputs),
    output: tensors(o.outputs, c.outputs),
    instance_group: [group],
    default_model_filename: 'model.onnx',
    parameters,
    response_cache: { enable: c.deterministic && c.result_cache.enabled && o.cacheEnabled !== false },
  };
  if (c.dynamic_batching) {
    const policy: TritonQueuePolicy = {
      timeout_action: 'REJECT',
      default_timeout_microseconds: c.queue.default_timeout_us,
      // A request's own timeout is always honoured here.
      allow_timeout_override: true,
      max_queue_size: c.queue.max_size,
    };
    out.dynamic_batching = {
      preferred_batch_size: [...c.dynamic_batching.preferred_batch_sizes],
      max_queue_delay_microseconds: c.dynamic_batching.max_queue_delay_us,
      preserve_ordering: false,
      priority_levels: c.queue.priority_levels > 1 ? c.queue.priority_levels : 0,
      default_priority_level: c.queue.priority_levels > 1 ? c.queue.default_priority : 0,
      default_queue_policy: policy,
    };
  }
  return out;
}

function versionPolicy(p: ModelConfig['version_policy']): TritonVersionPolicy {
  if ('latest' in p) return { latest: { num_versions: p.latest } };
  if ('all' in p) return { all: {} };
  return { specific: { versions: [...p.specific] } };
}
