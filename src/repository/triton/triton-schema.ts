/**
 * Triton's ModelConfig schema for the text parser: proto/inference/model_config.proto (the subset we read), plus
 * the names of the Triton fields that file leaves out.
 *
 * Fields of Triton's ModelConfig (its public model_config.proto) that proto/inference/model_config.proto leaves
 * out, per message. The parser skips these and reports them by path, so a real Triton config.pbtxt is told
 * what tensorgate does not honour instead of failing as if it were misspelt; a name in neither list is a typo
 * and fails. The mapping (triton-config.ts) decides whether each one is a warning or makes the model unservable.
 */
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../../paths';
import { parsePbtxt, type PbtxtResult } from './pbtxt';

export const TRITON_ONLY_FIELDS: Readonly<Record<string, readonly string[]>> = {
  ModelConfig: [
    'batch_input',
    'batch_output',
    'optimization',
    'sequence_batching',
    'ensemble_scheduling',
    'cc_model_filenames',
    'metric_tags',
    'model_operations',
    'model_transaction_policy',
    'model_repository_agents',
    'model_metrics',
  ],
  ModelInput: ['is_non_linear_format_io'],
  ModelOutput: ['is_non_linear_format_io'],
  ModelInstanceGroup: ['rate_limiter', 'secondary_devices'],
};

/** Triton-only fields that would make the model behave wrongly here if ignored: the model is refused (why). */
export const REFUSED_TRITON_FIELDS: Readonly<Record<string, string>> = {
  sequence_batching: 'stateful sequence models need requests of one sequence routed to one instance with its state, which tensorgate does not do',
  ensemble_scheduling: 'ensembles are not served; serve each step as its own model and chain them in the client',
  batch_input: 'it asks the server to compute extra model inputs (ragged batch offsets), which tensorgate does not',
  batch_output: 'it asks the server to scatter the outputs of ragged batches, which tensorgate does not',
  model_operations: 'custom operation libraries are not loaded',
  model_transaction_policy: 'decoupled models (zero or many responses per request) are not served; remove it if decoupled is false',
};

/** Triton-only fields that are safe to ignore: the model is served with a warning (why it is safe). */
export const IGNORED_TRITON_FIELDS: Readonly<Record<string, string>> = {
  optimization: 'graph level, CUDA graphs, pinned memory and execution accelerators (TensorRT, OpenVINO) are not applied; use config.yaml session.graph_optimization_level / execution_providers',
  cc_model_filenames: 'every version loads model.onnx',
  metric_tags: 'metrics carry the model and version labels only',
  model_metrics: 'histogram buckets are the server\'s',
  model_repository_agents: 'repository agents are not run; the model files are loaded as they are on disk',
  is_non_linear_format_io: 'it is a TensorRT setting',
  rate_limiter: 'concurrency is bounded by the instance count and the queue',
  secondary_devices: 'everything runs in ONNX Runtime on the CPU',
};

let modelConfigType: protobuf.Type | undefined;

/** inference.ModelConfig, loaded once with the proto's own (snake_case) field names. */
export function tritonModelConfigType(): protobuf.Type {
  if (!modelConfigType) {
    const root = new protobuf.Root().loadSync(path.join(PROTO_DIR, 'inference', 'model_config.proto'), { keepCase: true });
    root.resolveAll();
    modelConfigType = root.lookupType('inference.ModelConfig');
  }
  return modelConfigType;
}

/** Parses a config.pbtxt; throws PbtxtError (with file:line:col) when the text is not a valid ModelConfig. */
export function parseTritonConfigText(text: string, file = 'config.pbtxt'): PbtxtResult {
  return parsePbtxt(text, tritonModelConfigType(), {
    file,
    skippable: (message, field) => TRITON_ONLY_FIELDS[message]?.includes(field) ?? false,
  });
}
