/**
 * Readiness: derives every grpc.health.v1 entry, and /readyz, from the model repository, the circuit breakers
 * and whether the server is draining. It keeps no state of its own but "loading finished" and "draining", and
 * publishes only changes, so a Watch stream sees transitions rather than repeats.
 *
 *   "" and the server's services  strict (the default, as Triton's --strict-readiness): SERVING once loading has
 *                                 finished and every model in the repository has all the versions it should serve
 *                                 READY; lax: SERVING once loading has finished, broken models or not.
 *   "<model>"                     SERVING while the version a request without a version gets (the newest READY
 *                                 one) has no open breaker: that is what a caller naming only the model reaches.
 *   "<model>/<version>"           SERVING while that version is READY and its breaker is not open.
 *   anything else                 unknown: Check answers NOT_FOUND, Watch SERVICE_UNKNOWN (grpc-health-check's
 *                                 answers), and a Watch on a model that is still loading updates once it has loaded.
 * Draining holds every entry NOT_SERVING.
 *
 * Breakers never change "": a version whose inferences fail is a fault of that model, and taking every replica
 * out of rotation for it would turn one bad model into an outage of all of them. A half_open breaker counts as
 * SERVING: it closes only when a probe request reaches it, so a balancer that routes by these entries must send
 * traffic again once the reset timeout has passed (the first call is the probe; the rest are refused until it
 * ends).
 *
 * A 'change' event (status, reason) follows every change of the server's own readiness: a cluster worker
 * (src/cluster) reports it to the primary, which answers /readyz for all the processes together.
 */
import { EventEmitter } from 'node:events';
import type { HealthImplementation } from 'grpc-health-check';
import { clip, echo } from '../core/errors';
import type { Logger } from '../log';
import type { ModelEntry, ModelRepository, ModelVersionEntry } from '../repository/model-repository';
import type { BreakerRegistry } from '../resilience/circuit-breaker';

export type HealthStatus = 'SERVING' | 'NOT_SERVING';

/** /readyz names at most this many models that are not ready, each reason cut to MAX_REASON_CHARS. */
const MAX_LISTED_MODELS = 5;
const MAX_REASON_CHARS = 200;

export interface ReadinessOptions {
  repository: ModelRepository;
  breakers: BreakerRegistry;
  health: Pick<HealthImplementation, 'setStatus'>;
  /** The entries that report the whole server: "" and the gRPC services it serves. */
  services: readonly string[];
  /** Strict: the server is ready only while every model is READY. */
  strict: boolean;
  log: Logger;
}

/** The per-model entry names of one model: "<model>" and "<model>/<version>". */
export const modelServiceName = (model: string, version?: string) => (version === undefined ? model : `${model}/${version}`);

export class Readiness extends EventEmitter {
  private loaded = false;
  private draining = false;
  private readonly published = new Map<string, HealthStatus>();
  private why = 'loading models';

  constructor(private readonly options: ReadinessOptions) {
    super();
    for (const s of options.services) this.published.set(s, 'NOT_SERVING');
    // A version appears in its model's entry only when the whole model has loaded ('model-state'); an unloaded
    // version leaves it (or the model is reloading), and a breaker changes only its own version and model.
    const update = () => this.update();
    options.repository.on('model-state', update);
    options.repository.on('version-unloaded', update);
    options.breakers.on('state', () => {
      // Runs inside opossum's event dispatch, which must not throw.
      try {
        this.update();
      } catch (err) {
        options.log.error({ err }, 'health could not be updated after a circuit breaker transition');
      }
    });
  }

  /** The status of "" (and of /readyz). */
  get status(): HealthStatus {
    return this.why ? 'NOT_SERVING' : 'SERVING';
  }

  /** Why the server is not ready, in words (bounded); '' when it is. */
  get notReadyReason(): string {
    return this.why;
  }

  /** Whether a health entry ("<model>" or "<model>/<version>") is SERVING; an unknown entry is not. */
  isServing(service: string): boolean {
    return this.published.get(service) === 'SERVING';
  }

  /** The repository has been through loading (whatever the outcome): readiness now follows the models. */
  markLoaded(): void {
    this.loaded = true;
    this.update();
  }

  /** While draining every entry is NOT_SERVING, so balancers stop sending before the port closes. */
  setDraining(draining: boolean): void {
    this.draining = draining;
    this.update();
  }

  /** Recomputes every entry from the current state and publishes those that changed. */
  update(): void {
    const open = new Set(this.options.breakers.states().filter((b) => b.state === 'open').map((b) => b.key));
    const serving = (v: ModelVersionEntry | undefined): HealthStatus =>
      !this.draining && v?.state === 'READY' && !open.has(v.key) ? 'SERVING' : 'NOT_SERVING';
    const models = this.options.repository.list();
    const next = new Map<string, HealthStatus>();
    const reserved = new Set(this.options.services);
    for (const m of models) {
      if (reserved.has(m.name)) continue; // a folder named like one of our services must not override it
      next.set(modelServiceName(m.name), serving(this.options.repository.defaultVersion(m)));
      for (const v of m.versions) next.set(modelServiceName(m.name, v.version), serving(v));
    }
    const previous = this.why;
    this.why = this.whyNotReady(models);
    for (const s of this.options.services) next.set(s, this.status);
    // An entry that is no longer derived (a version a reload dropped) stays known, as NOT_SERVING.
    for (const key of this.published.keys()) if (!next.has(key)) next.set(key, 'NOT_SERVING');
    for (const [key, status] of next) {
      if (this.published.get(key) === status) continue;
      this.published.set(key, status);
      this.options.health.setStatus(key, status);
    }
    this.logChange(previous);
    if (this.why !== previous) this.emit('change', this.status, this.why);
  }

  private whyNotReady(models: ModelEntry[]): string {
    if (this.draining) return 'draining: the server is shutting down';
    if (!this.loaded) return 'loading models';
    if (!this.options.strict) return '';
    const notReady = models.filter((m) => m.versions.length === 0 || m.versions.some((v) => v.state !== 'READY'));
    if (notReady.length === 0) return '';
    const listed = notReady.slice(0, MAX_LISTED_MODELS).map((m) => `${echo(m.name)}: ${clip(describe(m), MAX_REASON_CHARS)}`);
    const more = notReady.length > MAX_LISTED_MODELS ? `; and ${notReady.length - MAX_LISTED_MODELS} more` : '';
    return `${notReady.length} of ${models.length} models not READY (strict readiness): ${listed.join('; ')}${more}`;
  }

  /** Logs the server's readiness when its reason changes once loaded; the drain logs its own start. */
  private logChange(previous: string): void {
    if (!this.loaded || this.draining || this.why === previous) return;
    if (this.why) {
      this.options.log.warn(
        { readiness: 'NOT_SERVING', reason: this.why },
        `not ready (health "" NOT_SERVING, /readyz 503): ${this.why}; with --strict-readiness false the server is ready with the READY models alone`,
      );
    } else {
      this.options.log.info({ readiness: 'SERVING' }, 'ready: health "" SERVING, /readyz 200');
    }
  }
}

/** One model's unreadiness: its own reason, or each version that is not READY. */
function describe(m: ModelEntry): string {
  if (m.versions.length === 0) return m.reason || 'loading';
  return m.versions
    .filter((v) => v.state !== 'READY')
    .map((v) => `version ${v.version} ${v.state}${v.reason ? `: ${v.reason}` : ''}`)
    .join('; ');
}
