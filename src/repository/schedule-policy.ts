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

export function schedulePolicy(config: ModelConfig): ModelSchedule {
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
  };
}
