/**
 * Canary releases: config.yaml `canary` splits the requests that name no version between READY versions by
 * weight, and rolls a canary back automatically when it misbehaves.
 *
 *   canary:
 *     weights: { "1": 90, "2": 10 }     # version -> weight; the heaviest is the stable version
 *     rollback: { max_error_rate: 0.2, max_p99_ms: 0, window_ms: 30000, min_requests: 20 }
 *
 * - A request that names a version always gets it. A request with a key of its own (ModelService
 *   options.request_id, the v2 `id`) is sticky: the same key always lands on the same version while the
 *   weights stand. Others are spread at random.
 * - A canary (any weighted version but the stable one) is rolled back, i.e. its weight dropped to 0, when over
 *   the last window_ms at least min_requests of its requests saw a server-side failure rate above
 *   max_error_rate or a p99 latency above max_p99_ms (0 = no latency rule), or when its circuit breaker opens.
 *   Client errors never count. Every transition is emitted ('transition'), logged and counted by the server.
 * - A reload of the model (its config changed) starts the split afresh from the config.
 */
import { EventEmitter } from 'node:events';
import type { ModelEntry } from '../repository/model-repository';
import type { CanaryConfig } from '../repository/model-config';

export interface CanaryTransition {
  model: string;
  version: string;
  to: 'rolled_back' | 'promoted';
  reason: string;
}

/** The split in force for a model (GetModel, ControlCanary). */
export interface CanarySplit {
  stable: string;
  weights: { version: string; weight: number }[];
  rolledBack: string[];
}

interface Sample {
  at: number;
  failed: boolean;
  ms: number;
}

interface CanaryState {
  config: CanaryConfig;
  /** The weights in force: the config's, or a promotion's. */
  weights: Record<string, number>;
  stable: string;
  rolledBack: Set<string>;
  samples: Map<string, Sample[]>;
}

export class CanaryRouter extends EventEmitter<{ transition: [CanaryTransition] }> {
  /** Per loaded model entry: a reload makes a new entry, so the split starts afresh from its config. */
  private readonly states = new WeakMap<ModelEntry, CanaryState>();

  constructor(private readonly now: () => number = () => performance.now()) {
    super();
  }

  /** The version a request that names none gets; undefined when the model has no canary (the newest READY one). */
  pick(entry: ModelEntry | undefined, routingKey: string | undefined): string | undefined {
    const state = entry && this.state(entry);
    if (!state) return undefined;
    const ready = new Set(entry.versions.filter((v) => v.state === 'READY').map((v) => v.version));
    let total = 0;
    const choices: [string, number][] = [];
    for (const [version, weight] of Object.entries(state.weights)) {
      if (weight <= 0 || !ready.has(version) || state.rolledBack.has(version)) continue;
      choices.push([version, weight]);
      total += weight;
    }
    if (total === 0) return undefined;
    let point = (routingKey ? hashFraction(routingKey) : Math.random()) * total;
    for (const [version, weight] of choices) {
      point -= weight;
      if (point < 0) return version;
    }
    return choices[choices.length - 1]![0];
  }

  /** A finished request that the router placed: `failed` = a server-side failure (client errors are not passed). */
  observe(entry: ModelEntry, version: string, failed: boolean, ms: number): void {
    const state = this.state(entry);
    if (!state || version === state.stable || state.rolledBack.has(version)) return;
    const { window_ms: windowMs, min_requests: minRequests, max_error_rate: maxErrorRate, max_p99_ms: maxP99 } = state.config.rollback;
    const now = this.now();
    let samples = state.samples.get(version);
    if (!samples) state.samples.set(version, (samples = []));
    samples.push({ at: now, failed, ms });
    while (samples.length > 0 && samples[0]!.at < now - windowMs) samples.shift();
    if (samples.length < minRequests) return;
    const failures = samples.filter((s) => s.failed).length;
    const rate = failures / samples.length;
    if (rate > maxErrorRate) {
      this.rollBack(entry, state, version, `${failures} of its last ${samples.length} requests failed (${(rate * 100).toFixed(0)}% > max_error_rate ${maxErrorRate * 100}%)`);
      return;
    }
    if (maxP99 > 0) {
      const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
      const p99 = sorted[Math.ceil(0.99 * sorted.length) - 1]!;
      if (p99 > maxP99) this.rollBack(entry, state, version, `p99 latency ${p99.toFixed(1)} ms over its last ${samples.length} requests > max_p99_ms ${maxP99}`);
    }
  }

  /** The version's circuit breaker opened: a canary is rolled back at once. */
  breakerOpened(entry: ModelEntry | undefined, version: string, reason: string): void {
    const state = entry && this.state(entry);
    if (!state || version === state.stable || state.rolledBack.has(version) || !(version in state.weights)) return;
    this.rollBack(entry, state, version, `its circuit breaker opened (${reason})`);
  }

  /** The split in force, or undefined for a model without a canary. */
  split(entry: ModelEntry): CanarySplit | undefined {
    const state = this.state(entry);
    if (!state) return undefined;
    const weights = Object.entries(state.weights)
      .map(([version, weight]) => ({ version, weight: state.rolledBack.has(version) ? 0 : weight }))
      .sort((a, b) => Number(b.version) - Number(a.version));
    return { stable: state.stable, weights, rolledBack: [...state.rolledBack].sort() };
  }

  /**
   * By command: the newest weighted version other than the stable one becomes the stable version and takes
   * every request that names no version (until the model is reloaded). Undefined when there is none to promote.
   */
  promote(entry: ModelEntry, reason: string): string | undefined {
    const state = this.state(entry);
    if (!state) return undefined;
    const canary = Object.keys(state.weights).filter((v) => v !== state.stable && !state.rolledBack.has(v)).sort((a, b) => Number(b) - Number(a))[0];
    if (canary === undefined) return undefined;
    state.stable = canary;
    state.weights = { [canary]: 1 };
    state.samples.clear();
    this.emit('transition', { model: entry.name, version: canary, to: 'promoted', reason: `${reason}; it takes every request that names no version` });
    return canary;
  }

  /** By command: every weighted version but the stable one is rolled back; the versions rolled back now. */
  rollBackAll(entry: ModelEntry, reason: string): string[] {
    const state = this.state(entry);
    if (!state) return [];
    const canaries = Object.keys(state.weights).filter((v) => v !== state.stable && !state.rolledBack.has(v));
    for (const v of canaries) this.rollBack(entry, state, v, reason);
    return canaries;
  }

  private rollBack(entry: ModelEntry, state: CanaryState, version: string, reason: string): void {
    state.rolledBack.add(version);
    state.samples.delete(version);
    this.emit('transition', { model: entry.name, version, to: 'rolled_back', reason: `${reason}; its traffic goes to the stable version ${state.stable}` });
  }

  private state(entry: ModelEntry): CanaryState | undefined {
    const config = entry.config?.canary;
    if (!config) return undefined;
    let state = this.states.get(entry);
    if (!state) {
      // The stable version is the heaviest; on a tie, the older one (a canary is usually the newer).
      const [stable] = Object.entries(config.weights).sort((a, b) => b[1] - a[1] || Number(a[0]) - Number(b[0]))[0]!;
      this.states.set(entry, (state = { config, weights: { ...config.weights }, stable, rolledBack: new Set(), samples: new Map() }));
    }
    return state;
  }
}

/** A key's place in [0, 1): FNV-1a, so one key always lands on the same version while the weights stand. */
function hashFraction(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 4294967296;
}
