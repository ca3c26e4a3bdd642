/**
 * ModelEntry -> tensorgate.v1.ModelInfo, shared by ListModels and GetModel.
 */
import type { TensorSpec } from '../../core/tensor';
import type { ModelEntry, ModelRepository } from '../../repository/model-repository';
import type { BreakerRegistry } from '../../resilience/circuit-breaker';
import type { PlacementView, RequestScheduler } from '../../scheduling/scheduler';
import type { CanaryRouter, CanarySplit } from '../../serving/canary-router';

function specToProto(s: TensorSpec) {
  return { name: s.name, dtype: s.dtype, shape: s.shape, dim_names: s.dimNames };
}

/** What ModelInfo reports besides the repository: live state of loaded versions. */
export interface ServingState {
  repository: ModelRepository;
  breakers: BreakerRegistry;
  scheduler: RequestScheduler;
  canary: CanaryRouter;
}

export function modelInfoToProto(entry: ModelEntry, { repository, breakers, scheduler, canary }: ServingState) {
  const config = entry.config;
  const breakerStates = new Map(breakers.states().map((b) => [b.key, b]));
  return {
    name: entry.name,
    platform: config?.platform ?? 'onnxruntime',
    description: config?.description ?? '',
    default_version: repository.defaultVersion(entry)?.version ?? '',
    versions: entry.versions.map((v) => ({
      version: v.version,
      state: v.state,
      reason: v.reason,
      inputs: v.inputs.map(specToProto),
      outputs: v.outputs.map(specToProto),
      breaker: breakerInfo(v.state === 'READY', breakerStates.get(v.key)),
      placement: v.state === 'READY' ? placementInfo(scheduler.placementOf(v.key)) : null,
    })),
    session: entry.settings
      ? {
          intra_op_threads: entry.settings.intraOpThreads,
          inter_op_threads: entry.settings.interOpThreads,
          graph_optimization_level: entry.settings.graphOptimizationLevel,
          execution_providers: entry.settings.executionProviders,
        }
      : null,
    text_pipeline: config?.text_pipeline ? { kind: config.text_pipeline.kind, labels: config.text_pipeline.labels } : null,
    config_json: config ? JSON.stringify(config) : '',
    reason: entry.reason,
    generation: generationInfo(entry, repository),
    canary: canaryStatus(entry.name, canary.split(entry)),
    warnings: entry.warnings,
  };
}

function generationInfo(entry: ModelEntry, repository: ModelRepository) {
  const g = entry.generation;
  if (!g) return null;
  const layout = repository.defaultVersion(entry)?.decoder;
  return {
    context_tokens: layout ? g.contextTokens(layout.maxPositions) : (g.config.max_context_tokens ?? 0),
    max_tokens: g.config.max_tokens,
    default_max_tokens: g.config.default_max_tokens,
    max_concurrent_sequences: g.config.max_concurrent_sequences,
    max_waiting_sequences: g.config.max_waiting_sequences,
    eos_token_ids: g.eosTokenIds,
    chat_template: g.tokenizer.hasChatTemplate,
    default_temperature: g.defaults.temperature,
    default_top_k: g.defaults.topK,
    default_top_p: g.defaults.topP,
  };
}

/** The split in force, as tensorgate.v1.CanaryStatus; null for a model without a canary. */
export function canaryStatus(model: string, split: CanarySplit | undefined) {
  if (!split) return null;
  return { model, stable_version: split.stable, weights: split.weights, rolled_back_versions: split.rolledBack };
}

/** A READY version whose breaker has not been created yet (no traffic) is closed. */
function breakerInfo(loaded: boolean, b: { state: string; nextProbeAt: number | undefined } | undefined) {
  if (!loaded) return null;
  return { state: b?.state ?? 'closed', next_probe_at: b?.nextProbeAt !== undefined ? new Date(b.nextProbeAt).toISOString() : '' };
}

function placementInfo(p: PlacementView | undefined) {
  return p ? { where: p.where, reason: p.reason, typical_run_us: p.typicalRunUs, solo: p.solo } : null;
}
