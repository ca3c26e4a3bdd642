/** What GET /console/api/models answers (ModelInfo as GetModel gives it), and the page's copy of it. */
import { getJson } from './api.js';

export interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
  dim_names: string[];
}

export interface VersionInfo {
  version: string;
  state: string;
  reason: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  breaker: { state: string; next_probe_at: string } | null;
  placement: {
    where: string;
    reason: string;
    typical_run_us: number;
    /** Whether a lone execution gets a session with every core (GetModel's placement.solo; src/scheduling/solo-runs.ts). */
    solo?: { state: string; reason: string; runs: string | number };
  } | null;
}

export interface ModelInfo {
  name: string;
  platform: string;
  description: string;
  default_version: string;
  versions: VersionInfo[];
  text_pipeline: { kind: string; labels: string[] } | null;
  reason: string;
  generation: {
    context_tokens: number;
    max_tokens: number;
    default_max_tokens: number;
    max_concurrent_sequences: number;
    max_waiting_sequences: number;
    default_temperature?: number;
    default_top_p?: number;
  } | null;
  canary: { model: string; stable_version: string; weights: Record<string, number>; rolled_back_versions: string[] } | null;
  warnings: string[];
  config: {
    max_batch_size?: number;
    dynamic_batching?: { preferred_batch_sizes?: number[]; max_queue_delay_us?: number };
    queue?: { max_size?: number };
    instance_count?: number;
    deterministic?: boolean;
  } | null;
}

export interface ServerInfo {
  grpc_port: number;
  http_port: number;
  tls: boolean;
  model_control_mode: 'none' | 'poll' | 'explicit';
  auth: boolean;
  /** Optional routes this server has (explain, feedback, accuracy, jobs). */
  features: Record<string, boolean>;
}

export interface ConsoleModels {
  server: ServerInfo;
  models: ModelInfo[];
}

export type ModelKind = 'text' | 'generate' | 'tensor';

export function kindOf(m: ModelInfo): ModelKind {
  if (m.generation) return 'generate';
  if (m.text_pipeline?.kind === 'text_classification') return 'text';
  return 'tensor';
}

/** The version a request naming none gets, or the newest READY one. */
export function servedVersion(m: ModelInfo): VersionInfo | undefined {
  return m.versions.find((v) => v.version === m.default_version) ?? m.versions.find((v) => v.state === 'READY');
}

let current: ConsoleModels | undefined;
const listeners = new Set<(data: ConsoleModels) => void>();

/** Fetches the models again and tells every view. */
export async function refreshModels(): Promise<ConsoleModels> {
  current = await getJson<ConsoleModels>('/console/api/models');
  for (const l of listeners) l(current);
  return current;
}

/** The last fetched models, fetching them the first time. */
export async function models(): Promise<ConsoleModels> {
  return current ?? refreshModels();
}

export function onModels(listener: (data: ConsoleModels) => void): void {
  listeners.add(listener);
}
