/**
 * TensorgateServer: assembles the process. One gRPC server (ModelService, health, reflection) in front
 * of the pipeline; the model repository loading into the execution pool behind it.
 *
 * Lifecycle: bind (health NOT_SERVING) -> load models -> SERVING (strict readiness: once every model is READY;
 * see api/readiness.ts) -> on shutdown NOT_SERVING, stop
 * accepting, let in-flight calls finish within the grace period, force-close the rest, stop workers.
 */
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { InferencePipeline } from './serving/inference-pipeline';
import { GenerationPipeline } from './serving/generation-pipeline';
import { SequenceScheduler } from './generation/sequence-scheduler';
import { createModelService } from './api/grpc/model-service';
import { createInferenceService } from './api/grpc/inference-service';
import { modelConfigView, repositoryControl, type ModelConfigView, type RepositoryControl, type V2Parts } from './api/v2/v2-control';
import { InflightCalls } from './api/inflight-calls';
import { RequestEnvelope, shuttingDown } from './api/envelope';
import { unavailable } from './core/errors';
import { clampDelay } from './core/timers';
import { INFERENCE_SERVICE_NAME, inferenceServiceDefinition, MODEL_SERVICE_NAME, modelServiceDefinition, reflectionPackageDefinition } from './api/grpc/protos';
import type { ServerConfig } from './config/server-config';
import { logAccess, type Logger } from './log';
import { HttpFrontDoor } from './api/http/http-server';
import { OPENAI_PREFIX, openAiError, openAiRoutes } from './api/openai/openai-routes';
import { accessInterceptor } from './api/grpc/access-interceptor';
import { httpAccessCheck } from './api/http/access-check';
import { AccessGuard } from './security/access-guard';
import { PolicyWatcher } from './security/policy-watcher';
import { describePolicy } from './security/access-policy';
import { V2_PREFIX, v2Routes } from './api/http/v2-routes';
import { JOBS_PREFIX, jobRoutes } from './api/http/job-routes';
import { JobRunner } from './jobs/job-runner';
import type { Job } from './jobs/job-store';
import { consoleRoutes } from './api/http/console-routes';
import { LiveSummary } from './telemetry/live-summary';
import { ServerMetrics } from './telemetry/metrics';
import type { RequestRecord } from './api/request-record';
import { ModelRepository, type ModelEntry, type ModelVersionEntry } from './repository/model-repository';
import { defaultIntraOpThreads, ExecutionPool } from './runtime/execution-pool';
import { RequestScheduler, type ModelSchedule, type PlacementEvent, type SoloEvent } from './scheduling/scheduler';
import { ResultCache } from './cache/result-cache';
import { BreakerRegistry, type BreakerTransition } from './resilience/circuit-breaker';
import { Readiness } from './api/readiness';
import { RepositoryPoller } from './repository/repository-poller';
import { CanaryRouter } from './serving/canary-router';
import { parseVersionKey } from './core/model-key';
import { OcclusionExplainer } from './explain/occlusion';
import { LiveAccuracy } from './feedback/live-accuracy';
import { insightCalls } from './api/grpc/insight-calls';
import { jsonRoutes } from './api/http/json-routes';
import { explainRoutes } from './api/http/explain-routes';
import { feedbackRoutes } from './api/http/feedback-routes';
import { grpcServerCredentials, isLoopbackHost, logTlsEvents, TlsFiles } from './security/tls-files';

/** A failure to start that a person can act on: the CLI prints its message alone, as one line. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** Why a bind failed, in words: grpc-js and node:net both report a taken port, each in its own way. */
function bindReason(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(err.message)) return 'the port is already in use';
  if (code === 'EACCES' || /EACCES|permission denied/i.test(err.message)) return 'permission denied (ports below 1024 need privileges)';
  if (code === 'EADDRNOTAVAIL' || /EADDRNOTAVAIL/.test(err.message)) return 'this machine has no such address (--host)';
  return err.message;
}

/** Why async jobs are off, if they are: turned off, or several processes (a job lives in the one that accepted it). */
function jobsOffReason(config: ServerConfig): string | undefined {
  if (config.maxJobs === 0) return 'async jobs are off on this server (--max-jobs 0); call without async=true';
  if (config.processes > 1) {
    return `async jobs need --processes 1: a job lives only in the server process that accepted it, and with ${config.processes} processes a later GET /v2/jobs/{id} could reach another; call without async=true`;
  }
  return undefined;
}

/** After a drain answers its unfinished calls, how long their answers get to reach clients before sockets close. */
const SHUTDOWN_FLUSH_MS = 1000;

/** Services whose health is reported besides the overall "" entry. */
export const HEALTH_SERVICES = ['', MODEL_SERVICE_NAME, INFERENCE_SERVICE_NAME];

export class TensorgateServer {
  readonly grpcServer: grpc.Server;
  readonly pool: ExecutionPool;
  readonly repository: ModelRepository;
  readonly scheduler: RequestScheduler;
  readonly pipeline: InferencePipeline;
  readonly sequences: SequenceScheduler;
  readonly generation: GenerationPipeline;
  /** Live accuracy from feedback: classification predictions counted and remembered, feedback per version. */
  readonly liveAccuracy: LiveAccuracy;
  /** Explanations of text classifications by occlusion, through the pipeline. */
  readonly explainer: OcclusionExplainer;
  readonly breakers: BreakerRegistry;
  /** config.yaml `canary`: the weighted split of requests that name no version, and automatic rollback. */
  readonly canary = new CanaryRouter();
  readonly cache: ResultCache | undefined;
  readonly health: HealthImplementation;
  readonly readiness: Readiness;
  readonly metrics = new ServerMetrics();
  /** The web console's live figures, from the same registry (sampled only while a Watch page polls). */
  readonly liveSummary = new LiveSummary(this.metrics.registry);
  readonly http: HttpFrontDoor;
  /** Unanswered calls: a drain that runs out of grace answers them UNAVAILABLE. */
  readonly inflightCalls = new InflightCalls();
  readonly envelope: RequestEnvelope;
  /** Async jobs (?async=true on infer and completions; GET/DELETE /v2/jobs/{id}): this process's, bounded. */
  readonly jobs: JobRunner;
  /** The v2 protocol's model control (RepositoryModelLoad/Unload, REST load/unload) and configuration views. */
  readonly repositoryControl: RepositoryControl;
  readonly modelConfig: ModelConfigView;
  /** --tls-cert/--tls-key(/--tls-client-ca): both ports serve TLS from these files; undefined: plaintext. */
  readonly tls: TlsFiles | undefined;
  private boundPort = 0;
  private boundHttpPort = 0;
  private shuttingDown: Promise<void> | undefined;
  /** --auth-config: reloads the access policy when its files change. */
  policyWatcher: PolicyWatcher | undefined;
  /** --model-control-mode poll: the repository scanner, once models have loaded. */
  poller: RepositoryPoller | undefined;

  constructor(
    readonly config: ServerConfig,
    private readonly log: Logger,
  ) {
    this.pool = new ExecutionPool({ workers: config.workers || undefined, soloThreads: config.soloThreads || os.availableParallelism() });
    this.pool.on('worker-restarted', (index: number) => log.warn({ worker: index }, 'inference worker replaced after it exited'));
    this.pool.on('session-restore-failed', (e: { index: number; key: string; reason: string }) =>
      log.error({ worker: e.index, session: e.key, reason: e.reason }, `${e.key} could not be loaded again on replaced inference worker ${e.index}: ${e.reason}`),
    );
    // An uncaught error inside a worker thread (it then exits and is replaced): the reason, for the bug report.
    this.pool.on('worker-error', (e: { index: number; error: Error }) =>
      log.error({ worker: e.index, err: e.error }, `inference worker ${e.index} failed: ${e.error?.message ?? String(e.error)}`),
    );
    this.repository = new ModelRepository({
      root: config.modelRepository,
      pool: this.pool,
      defaultIntraOpThreads: config.intraOpThreads || defaultIntraOpThreads(this.pool.workerCount),
    });
    this.scheduler = new RequestScheduler(this.pool, { inlineMaxRunUs: config.inlineMaxRunUs });
    this.breakers = new BreakerRegistry();
    this.cache = config.cacheMaxBytes > 0 ? new ResultCache({ maxBytes: config.cacheMaxBytes }) : undefined;
    this.repository.on('version-ready', (v: ModelVersionEntry, schedule: ModelSchedule) => {
      this.scheduler.configure(v.key, schedule);
      // A (re)loaded version must never answer with results computed by what was loaded before.
      this.cache?.invalidate(v.model, v.version);
      this.liveAccuracy.forget(v.key);
    });
    this.repository.on('version-unloaded', (v: ModelVersionEntry) => {
      this.liveAccuracy.forget(v.key);
      this.scheduler.remove(v.key);
      this.sequences.forget(v.key, unavailable(`version ${v.version} of model '${v.model}' was unloaded while generating; retry`));
      this.breakers.remove(v.key);
      this.cache?.invalidate(v.model, v.version);
    });
    this.repository.on('model-state', (m: ModelEntry) => this.metrics.observeModelLoad(m.name, m.loadMs / 1000));
    this.repository.on('reload-failed', (m: ModelEntry, reason: string) => {
      log.warn({ model: m.name, reason }, `reload of model ${m.name} failed, its previous load keeps serving: ${reason}`);
      this.metrics.observeReloadFailure(m.name);
    });
    this.scheduler.on('placement', (e: PlacementEvent) =>
      log.info({ session: e.key, placement: e.where, reason: e.reason }, `${e.key} now runs ${e.where === 'main_thread' ? 'inline on the main thread' : 'on the inference workers'}: ${e.reason}`),
    );
    this.scheduler.on('solo', (e: SoloEvent) => {
      if (e.failed) log.warn({ session: e.key, solo: e.state, reason: e.reason }, `${e.key} cannot run solo: ${e.reason}`);
      else log.info({ session: e.key, solo: e.state, reason: e.reason }, `${e.key} solo runs ${e.state === 'ready' ? 'on' : 'off'}: ${e.reason}`);
    });
    this.scheduler.on('merging-stopped', (e: { key: string; reason: string }) =>
      log.warn({ session: e.key, reason: e.reason }, `${e.key}: requests are no longer merged into batches: ${e.reason}; set max_batch_size: 0 in its config.yaml`),
    );
    this.breakers.on('state', (t: BreakerTransition) => {
      log.warn({ breaker: t.key, from: t.from, to: t.to, reason: t.reason }, `circuit breaker of ${t.key}: ${t.from} -> ${t.to} (${t.reason})`);
      const k = parseVersionKey(t.key);
      if (t.to === 'open' && k) this.canary.breakerOpened(this.repository.get(k.model), k.version, t.reason);
    });
    this.canary.on('transition', (t) => {
      log.warn({ model: t.model, version: t.version, canary: t.to, reason: t.reason }, `canary version ${t.version} of model ${t.model} ${t.to === 'promoted' ? 'promoted' : 'rolled back'}: ${t.reason}`);
      this.metrics.observeCanaryTransition(t.model, t.version, t.to);
    });
    this.sequences = new SequenceScheduler(this.pool, this.scheduler.solo);
    this.metrics.bind({ scheduler: this.scheduler, pool: this.pool, repository: this.repository, cache: this.cache, breakers: this.breakers, sequences: this.sequences });
    this.http = new HttpFrontDoor({
      tls: (this.tls = TlsFiles.fromSettings(config)),
      host: config.host,
      port: config.httpPort,
      metrics: this.metrics,
      health: () => this.readiness.status,
      notReadyReason: () => this.readiness.notReadyReason,
      limits: {
        headersTimeoutMs: config.httpHeadersTimeoutMs,
        requestTimeoutMs: config.httpRequestTimeoutMs,
        keepAliveTimeoutMs: config.httpKeepAliveTimeoutMs,
        idleTimeoutMs: config.httpIdleTimeoutMs,
        maxConnections: config.httpMaxConnections,
      },
    });
    this.liveAccuracy = new LiveAccuracy({ repository: this.repository, metrics: this.metrics.classificationMetrics() });
    this.pipeline = new InferencePipeline({
      repository: this.repository,
      scheduler: this.scheduler,
      breakers: this.breakers,
      cache: this.cache,
      limits: { maxElements: config.maxElements, maxTextBytes: config.maxTextBytes },
      canary: this.canary,
      observer: this.liveAccuracy.observe,
    });
    this.explainer = new OcclusionExplainer({ pipeline: this.pipeline, repository: this.repository, maxTextBytes: config.maxTextBytes });
    this.generation = new GenerationPipeline({
      repository: this.repository,
      sequences: this.sequences,
      breakers: this.breakers,
      limits: { maxTextBytes: config.maxTextBytes },
      observer: this.metrics.generationObserver(),
    });
    this.health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, 'NOT_SERVING' as const])));
    this.readiness = new Readiness({
      repository: this.repository,
      breakers: this.breakers,
      health: this.health,
      services: HEALTH_SERVICES,
      strict: config.strictReadiness,
      log,
    });
    // Every front door serves its calls through this one envelope (span, record, access log, metrics, drain,
    // and the access policy once listen() has loaded it).
    this.envelope = new RequestEnvelope({
      observe: (r) => this.observeRequest(r),
      inflight: (protocol, delta) => this.metrics.inflight(protocol, delta),
      calls: this.inflightCalls,
    });
    this.grpcServer = new grpc.Server({
      'grpc.max_receive_message_length': config.maxMessageBytes,
      'grpc.max_send_message_length': config.maxMessageBytes,
      // Channelz stays on (the default) although no channelz service is served: grpc-js 1.14's forceShutdown()
      // destroys only the sessions it tracked for channelz, so with 'grpc.enable_channelz': 0 a shutdown left open
      // calls hanging (test/generate.test.ts, shutting down while sequences are decoding); and turning it off
      // measured no faster (bench/results/channelz-on-off-2026-12-03-0218.md).
      // Connection lifetime and keepalive (README "Behind a load balancer"); 0 leaves grpc-js's default.
      ...(config.maxConnectionAgeMs > 0 ? { 'grpc.max_connection_age_ms': config.maxConnectionAgeMs } : {}),
      ...(config.maxConnectionAgeGraceMs > 0 ? { 'grpc.max_connection_age_grace_ms': config.maxConnectionAgeGraceMs } : {}),
      ...(config.keepaliveTimeMs > 0 ? { 'grpc.keepalive_time_ms': config.keepaliveTimeMs } : {}),
      ...(config.keepaliveTimeoutMs > 0 ? { 'grpc.keepalive_timeout_ms': config.keepaliveTimeoutMs } : {}),
      // Concurrent calls per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): one connection cannot hold more.
      ...(config.maxConcurrentStreams > 0 ? { 'grpc.max_concurrent_streams': config.maxConcurrentStreams } : {}),
      // Authentication before a message is read, for every service (src/api/grpc/access-interceptor.ts); without
      // a policy there is no interceptor at all, so its per-call wrapper costs nothing.
      ...(config.authConfig ? { interceptors: [accessInterceptor(this.envelope)] } : {}),
    });
    this.jobs = new JobRunner({
      limits: { ttlMs: config.jobTtlSecs * 1000, maxJobs: config.maxJobs, maxResultBytes: config.maxJobResultBytes },
      observe: (r) => this.observeRequest(r),
      disabled: jobsOffReason(config),
    });
    this.jobs.store.on('finished', (job: Job) => this.metrics.observeJobFinished(job.model, job.status));
    this.metrics.readJobsFrom(() => this.jobs.store.counts());
    this.http.mount(jobRoutes({ jobs: this.jobs, envelope: this.envelope }), { prefix: JOBS_PREFIX });
    this.http.mount(
      openAiRoutes({ generation: this.generation, repository: this.repository, envelope: this.envelope, maxBodyBytes: config.maxTextBytes * 2 + 65_536, jobs: this.jobs }),
      { prefix: OPENAI_PREFIX },
    );
    this.grpcServer.addService(modelServiceDefinition(), {
      ...createModelService({ predict: this.pipeline, generate: this.generation }, { repository: this.repository, breakers: this.breakers, scheduler: this.scheduler, canary: this.canary }, log, this.envelope),
      ...insightCalls(this.envelope, { explainer: this.explainer, liveAccuracy: this.liveAccuracy }),
    });
    // A reload or unload releases a version's sessions only once its requests in flight have finished.
    this.repository.drainWith((key) => this.pipeline.drained(key));
    this.repositoryControl = repositoryControl(this.repository, config.modelControlMode);
    this.modelConfig = modelConfigView(this.repository, { workers: this.pool.workerCount, cacheEnabled: this.cache !== undefined });
    // The v2 protocol on both ports (gRPC GRPCInferenceService, REST /v2), built from the same parts.
    const v2: V2Parts = {
      pipeline: this.pipeline,
      repository: this.repository,
      readiness: this.readiness,
      statistics: this.metrics.statistics,
      control: this.repositoryControl,
      config: this.modelConfig,
      envelope: this.envelope,
    };
    this.grpcServer.addService(inferenceServiceDefinition(), createInferenceService(v2));
    this.http.mount(
      v2Routes({ ...v2, maxBodyBytes: config.maxMessageBytes, jobs: this.jobs }),
      { prefix: V2_PREFIX },
    );
    // Explanations and live accuracy beside the v2 routes (/v2/models/{m}/explain, /feedback, /accuracy).
    this.http.mount(
      jsonRoutes(this.envelope, V2_PREFIX, [...explainRoutes(this.explainer, config.maxTextBytes * 2 + 65_536), ...feedbackRoutes(this.liveAccuracy)]),
      { prefix: V2_PREFIX },
    );
    // The web console at / (src/api/http/console-routes.ts): static files and two read-only JSON routes.
    this.http.mount(
      consoleRoutes({
        repository: this.repository,
        breakers: this.breakers,
        scheduler: this.scheduler,
        canary: this.canary,
        envelope: this.envelope,
        summary: this.liveSummary,
        server: () => ({ grpc_port: this.boundPort, http_port: this.boundHttpPort, tls: this.tls !== undefined, model_control_mode: config.modelControlMode, auth: this.envelope.guard !== undefined }),
      }),
    );
    this.health.addToServer(this.grpcServer);
    new ReflectionService(reflectionPackageDefinition()).addToServer(this.grpcServer);
  }

  /** Every front door reports each finished request here: access log, then metrics. */
  private observeRequest(record: RequestRecord): void {
    if (this.config.accessLog) logAccess(this.log, record);
    this.metrics.observeRequest(record);
  }

  get httpPort(): number {
    return this.boundHttpPort;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Binds, loads every model, then reports SERVING. Resolves with the bound port. */
  async start(): Promise<number> {
    await this.listen();
    await this.loadModels();
    return this.boundPort;
  }

  /** Binds the port; health answers NOT_SERVING until loadModels() finishes. */
  async listen(): Promise<number> {
    await this.loadAccessPolicy();
    const address = `${this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host}:${this.config.port}`;
    let credentials = grpc.ServerCredentials.createInsecure();
    if (this.tls) {
      // The files are checked before anything binds; gRPC follows rotations through its credentials, HTTPS
      // through the same TlsFiles' events (HttpFrontDoor).
      try {
        this.tls.load();
      } catch (err) {
        throw new StartupError((err as Error).message);
      }
      logTlsEvents(this.tls, this.log);
      credentials = grpcServerCredentials(this.tls.start());
    } else if (!isLoopbackHost(this.config.host)) {
      this.log.warn(
        { host: this.config.host, tls: false },
        `the gRPC and HTTP ports on ${this.config.host} are plaintext and reachable beyond this machine: anyone who can connect can read and send requests; turn TLS on with --tls-cert FILE --tls-key FILE (and --tls-client-ca FILE for mutual TLS), or bind 127.0.0.1`,
      );
    }
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.grpcServer.bindAsync(address, credentials, (err, port) =>
        err ? reject(new StartupError(`cannot listen for gRPC on ${address}: ${bindReason(err)}; choose another port with --port N or TENSORGATE_PORT (0 picks a free one)`)) : resolve(port),
      );
    });
    try {
      this.boundHttpPort = await this.http.listen();
    } catch (err) {
      // A route plugin that fails to load is our bug, not a port problem: no port advice for it.
      const portProblem = typeof (err as NodeJS.ErrnoException).code === 'string' && /^E[A-Z]+$/.test((err as NodeJS.ErrnoException).code!);
      throw new StartupError(
        `cannot listen for HTTP on ${this.config.host}:${this.config.httpPort}: ${bindReason(err as Error)}` +
          (portProblem ? '; choose another port with --http-port N or TENSORGATE_HTTP_PORT (0 picks a free one)' : ''),
      );
    }
    this.log.info(
      { address: `${this.config.host}:${this.boundPort}`, httpPort: this.boundHttpPort, workers: this.pool.workerCount },
      `listening: gRPC${this.tls ? ' (TLS)' : ''} ${this.config.host}:${this.boundPort}, HTTP${this.tls ? 'S' : ''} ${this.config.host}:${this.boundHttpPort} (/metrics, /healthz, /readyz, /v1 OpenAI-compatible, /v2 Open Inference Protocol); loading models`,
    );
    return this.boundPort;
  }

  /**
   * --auth-config: the access policy, read before anything binds (a policy that does not load stops the start,
   * never serves open); from then on every call on both ports is authenticated and checked against it.
   */
  private async loadAccessPolicy(): Promise<void> {
    if (!this.config.authConfig || this.envelope.guard) return;
    let guard: AccessGuard;
    try {
      guard = await AccessGuard.fromFile(this.config.authConfig);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    this.envelope.guard = guard;
    this.http.accessCheck = httpAccessCheck(this.envelope, { [OPENAI_PREFIX]: (err) => openAiError(err).body });
    this.policyWatcher = new PolicyWatcher(guard, this.config.authReloadSecs * 1000, (next) => (this.envelope.guard = next), this.log).start();
    const summary = describePolicy(guard.policy);
    this.log.info(summary.fields, summary.message);
    if (guard.policy.mtls && !this.config.tlsClientCa) this.log.warn('the access policy accepts client certificates (mtls) but --tls-client-ca is not set, so no client presents one');
  }

  /** Loads the repository (a broken model never fails this); health then follows the models (strict or lax). */
  async loadModels(): Promise<void> {
    const started = performance.now();
    const { modelControlMode: mode, loadModels: named } = this.config;
    // explicit: only the models named at start ('*' = all); none and poll: everything in the repository.
    const only = mode === 'explicit' && !named.includes('*') ? named : undefined;
    try {
      await this.repository.loadAll(only);
    } catch (err) {
      throw new StartupError(`cannot load the model repository: ${(err as Error).message}`);
    }
    this.logModels(performance.now() - started);
    this.readiness.markLoaded();
    if (mode === 'poll') {
      this.poller = new RepositoryPoller(this.repository, this.config.repositoryPollSecs * 1000, this.log);
      await this.poller.start();
      this.log.info({ pollSecs: this.config.repositoryPollSecs }, `model control mode poll: the repository is scanned every ${this.config.repositoryPollSecs} s`);
    }
  }

  private logModels(loadMs: number): void {
    const models = this.repository.list();
    for (const m of models) {
      for (const v of m.versions) {
        const fields = { model: m.name, version: v.version, state: v.state, ...(v.reason ? { reason: v.reason } : {}) };
        if (v.state === 'READY') this.log.info(fields, `model ${m.name} version ${v.version} READY`);
        else this.log.warn(fields, `model ${m.name} version ${v.version} ${v.state}: ${v.reason}`);
      }
      if (m.versions.length === 0) this.log.warn({ model: m.name, reason: m.reason }, `model ${m.name} UNAVAILABLE: ${m.reason}`);
      // Once per load: what a config.pbtxt asks for that this server ignores or does differently.
      for (const w of m.warnings) this.log.warn({ model: m.name, config: m.configFile, warning: w }, `model ${m.name} ${m.configFile}: ${w}`);
    }
    const summary = models.map((m) => `${m.name} [${m.versions.map((v) => `v${v.version} ${v.state}`).join(', ') || 'no versions'}]`).join(', ');
    this.log.info(
      { port: this.boundPort, host: this.config.host, models: models.length, readyVersions: this.repository.readyVersionCount(), loadMs: Math.round(loadMs) },
      `tensorgate serving on ${this.config.host}:${this.boundPort} - ${summary || 'no models'}`,
    );
  }

  /**
   * NOT_SERVING holds every health entry and /readyz NOT_SERVING (the drain uses it; so can an operator hook or
   * a test); SERVING lifts the hold, and health follows the models again.
   */
  setHealth(status: 'SERVING' | 'NOT_SERVING'): void {
    this.readiness.setDraining(status === 'NOT_SERVING');
  }

  /**
   * Graceful drain: NOT_SERVING first (so load balancers stop sending), refuse new calls, finish in-flight
   * ones, and force-close whatever is left when the grace period ends.
   */
  shutdown(graceMs = this.config.shutdownGraceMs): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.setHealth('NOT_SERVING');
      // Jobs do not survive the process: no new ones, and unfinished ones are cancelled now (their queued work
      // dropped) rather than left to hold the drain; their status stays readable while the HTTP port is up.
      const cancelledJobs = this.jobs.close();
      if (cancelledJobs > 0) this.log.warn({ jobs: cancelledJobs }, `cancelled ${cancelledJobs} unfinished async jobs`);
      await this.poller?.stop();
      this.policyWatcher?.stop();
      this.tls?.stop();
      this.log.info({ graceMs }, 'draining: health NOT_SERVING, finishing in-flight requests');
      await new Promise<void>((resolve) => {
        let flushTimer: NodeJS.Timeout | undefined;
        const timer = setTimeout(() => {
          // Answered by us with UNAVAILABLE (retried by clients and meshes) rather than CANCELLED by
          // forceShutdown; answered calls let tryShutdown finish, and forceShutdown closes what is left.
          const failed = this.inflightCalls.failAll(shuttingDown(graceMs));
          this.log.warn({ graceMs, failed }, `grace period over; answered ${failed} unfinished calls UNAVAILABLE`);
          flushTimer = setTimeout(() => {
            this.grpcServer.forceShutdown();
            resolve();
          }, SHUTDOWN_FLUSH_MS);
          flushTimer.unref();
        }, clampDelay(graceMs));
        timer.unref();
        this.grpcServer.tryShutdown(() => {
          clearTimeout(timer);
          clearTimeout(flushTimer);
          resolve();
        });
      });
      // Whatever still waits in the queues was answered above or belongs to a caller gone: never run it.
      this.scheduler.close(unavailable('the server is shutting down; retry on another replica'));
      // The HTTP port stays up through the drain, so /readyz says 503 and /metrics shows it.
      await this.http.close();
      this.liveSummary.stop();
      this.metrics.unbind();
      await this.pool.close();
      this.breakers.shutdown();
      this.log.info('stopped');
    })();
    return this.shuttingDown;
  }
}
