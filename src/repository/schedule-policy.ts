/**
 * config.yaml's batching/queue settings -> the scheduler's policy for one model version, after checking
 * that the model can be batched at all (dim 0 of every input and output must be its dynamic batch dim).
 */
import type { TensorSpec } from '../core/tensor';
import type { ModelSchedule } from '../scheduling/scheduler';
import type { ModelConfig } from './model-config';

export function batchingProblems(config: ModelConfig, inputs: TensorSpec[], outputs: TensorSpec[]): string[] {
  if (config.max_batch_size === 0) return [];
  const problems: string[] = [];
  for (const [kind, specs] of [['input', inputs], ['output', outputs]] as const) {
    for (const s of specs) {
      if (s.shape.length === 0) continue; // unknown shape: checked at run time by the batch split
      if (s.shape[0] !== -1) {
        problems.push(`max_batch_size ${config.max_batch_size} needs a dynamic dim 0 (the batch) on every ${kind}, but ${kind} '${s.name}' has dim 0 fixed at ${s.shape[0]}`);
      }
    }
  }
  return problems;
}

/**
 * A model file larger than this never runs inline: its main-thread session would be created while the
 * server serves (blocking the event loop for the load) and hold a second copy of the weights.
 */
export const INLINE_MAX_MODEL_BYTES = 16 * 1024 * 1024;

/** "it uses the ... execution providers" when the version runs on anything but the CPU alone; else undefined. */
function otherProviders(config: ModelConfig): string | undefined {
  const providers = config.session.execution_providers;
  return providers.some((p) => p !== 'cpu') ? `it uses the ${providers.join(', ')} execution providers` : undefined;
}

/** Why a version must stay on the workers whatever its run times; undefined when it may run inline. */
export function inlineIneligibility(config: ModelConfig, modelBytes: number): string | undefined {
  if (config.execution.placement === 'worker') return 'config.yaml sets execution.placement: worker';
  const providers = otherProviders(config);
  if (providers) return `${providers} (main-thread runs use the CPU only)`;
  if (modelBytes > INLINE_MAX_MODEL_BYTES) return `its model file is ${(modelBytes / 2 ** 20).toFixed(0)} MiB, more than the ${INLINE_MAX_MODEL_BYTES / 2 ** 20} MiB a main-thread session may hold`;
  return undefined;
}

/**
 * A model file larger than this never gets a solo session (scheduling/solo-runs.ts): it would hold one more
 * copy of the weights, and the worker that makes it while the server serves takes no work for the load.
 */
export const SOLO_MAX_MODEL_BYTES = 256 * 1024 * 1024;

/** Why a version never runs solo (on a session with more threads than config or server gave it); undefined when it may. */
export function soloIneligibility(config: ModelConfig, modelBytes: number): string | undefined {
  if (config.session.intra_op_threads > 0) return `config.yaml sets session.intra_op_threads: ${config.session.intra_op_threads}`;
  const providers = otherProviders(config);
  if (providers) return providers;
  if (modelBytes > SOLO_MAX_MODEL_BYTES) return `its model file is ${(modelBytes / 2 ** 20).toFixed(0)} MiB, more than the ${SOLO_MAX_MODEL_BYTES / 2 ** 20} MiB a second session may hold`;
  return undefined;
}

export function schedulePolicy(config: ModelConfig, modelBytes: number): ModelSchedule {
  const batching = config.dynamic_batching;
  return {
    policy: {
      maxBatchSize: batching ? config.max_batch_size : 0,
      maxRowsPerRequest: config.max_batch_size,
      preferredBatchSizes: [...(batching?.preferred_batch_sizes ?? [])].sort((a, b) => a - b),
      maxQueueDelayMs: (batching?.max_queue_delay_us ?? 0) / 1000,
      maxQueueSize: config.queue.max_size,
      priorityLevels: config.queue.priority_levels,
      defaultPriority: config.queue.default_priority,
      defaultTimeoutMs: config.queue.default_timeout_us / 1000,
    },
    instanceCount: config.instance_count,
    executionTimeoutMs: config.execution_timeout_ms,
    inlineIneligible: inlineIneligibility(config, modelBytes),
  };
}
