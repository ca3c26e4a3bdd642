/**
 * Server settings: one validated schema, filled from defaults < TENSORGATE_* environment < command-line
 * flags (flags win).
 */
import * as os from 'node:os';
import { z } from 'zod';
import { describeIssues } from '../repository/model-config';
import { BUNDLED_MODELS_DIR } from '../paths';

export const serverConfigSchema = z.strictObject({
  modelRepository: z.string().min(1).default(BUNDLED_MODELS_DIR),
  host: z.string().min(1).default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65535).default(50051),
  /** HTTP port: /metrics, /healthz, /readyz (and the REST API). */
  httpPort: z.coerce.number().int().min(0).max(65535).default(8080),
  /** HTTP slow-client bounds in ms (0 turns one off): headers complete, whole request received, idle keep-alive, silent socket. */
  httpHeadersTimeoutMs: z.coerce.number().int().min(0).default(10_000),
  httpRequestTimeoutMs: z.coerce.number().int().min(0).default(30_000),
  httpKeepAliveTimeoutMs: z.coerce.number().int().min(0).default(5_000),
  httpIdleTimeoutMs: z.coerce.number().int().min(0).default(60_000),
  /** Most open HTTP connections; 0 = no cap. */
  httpMaxConnections: z.coerce.number().int().min(0).default(1000),
  /** Inference worker threads; 0 = one per core, at most 4 (with --processes N: per process, the cores / N). */
  workers: z.coerce.number().int().min(0).max(256).default(0),
  /** ONNX Runtime intra-op threads per session when a model's config.yaml does not set them; 0 = cores / workers. */
  intraOpThreads: z.coerce.number().int().min(0).max(256).default(0),
  /**
   * Server processes (node:cluster) sharing the gRPC and HTTP ports; each loads every model. 1 = no cluster at
   * all; `auto` = one per core. See src/cluster/primary.ts.
   */
  processes: z
    .preprocess((v) => (v === 'auto' ? os.availableParallelism() : v), z.coerce.number().int().min(1).max(64))
    .default(1),
  /**
   * ONNX Runtime threads of a solo run: an execution of a version whose runs take milliseconds, started while no
   * worker has anything else to do (src/scheduling/solo-runs.ts); 1 = no solo runs; 0 = the process's cores.
   */
  soloThreads: z.coerce.number().int().min(0).max(256).default(0),
  /** Longest measured run (µs) for which a model version executes inline on the main thread; 0 = always on workers. */
  inlineMaxRunUs: z.coerce.number().int().min(0).max(10_000).default(250),
  /** Largest gRPC message accepted or sent, in bytes. */
  maxMessageBytes: z.coerce.number().int().positive().default(64 * 1024 * 1024),
  /** Most tensor elements one request may carry. */
  maxElements: z.coerce.number().int().positive().default(16 * 1024 * 1024),
  /** Most UTF-8 bytes of input_text one request may carry (text pipelines read only their first max_tokens words). */
  maxTextBytes: z.coerce.number().int().positive().default(64 * 1024),
  /** Byte bound of the result cache shared by all models; 0 turns caching off. */
  cacheMaxBytes: z.coerce.number().int().min(0).default(256 * 1024 * 1024),
  /**
   * Async jobs (?async=true, src/jobs): a finished job is kept this long, and an unfinished one must finish
   * within it; at most maxJobs jobs (0 turns async jobs off) and maxJobResultBytes of results are held.
   */
  jobTtlSecs: z.coerce.number().min(1).max(7 * 86_400).default(600),
  maxJobs: z.coerce.number().int().min(0).max(1_000_000).default(1000),
  maxJobResultBytes: z.coerce.number().int().positive().default(64 * 1024 * 1024),
  /**
   * gRPC connection lifetime in ms, 0 = grpc-js default (unlimited): after it (+/-10% jitter) the server sends
   * GOAWAY, in-flight calls finish, and the client opens a new connection, which an L4 balancer may place on a
   * new replica. Grace: how long calls may still run after that GOAWAY before the connection is closed; 0 = no limit.
   */
  maxConnectionAgeMs: z.coerce.number().int().min(0).default(0),
  maxConnectionAgeGraceMs: z.coerce.number().int().min(0).default(0),
  /**
   * Server keepalive pings in ms, 0 = grpc-js default (time: off; timeout: 20000): a ping after this long without
   * traffic on a connection, and the connection dropped when its answer takes longer than the timeout.
   */
  keepaliveTimeMs: z.coerce.number().int().min(0).default(0),
  keepaliveTimeoutMs: z.coerce.number().int().min(0).default(0),
  /**
   * Triton's model control modes. none: every model in the repository is loaded at start and stays as loaded.
   * poll: the same, and the repository is rescanned every repositoryPollSecs: new, changed and removed models and
   * versions are loaded, reloaded (without downtime) and unloaded. explicit: only the loadModels ones at start;
   * then loads and unloads on request (v2 RepositoryModelLoad/Unload, REST, `tensorgate models load|unload|reload`).
   */
  modelControlMode: z.enum(['none', 'poll', 'explicit']).default('none'),
  repositoryPollSecs: z.coerce.number().min(0.1).max(86_400).default(15),
  /** explicit mode: the models loaded at start; '*' = all. */
  loadModels: z
    .preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v), z.array(z.string().min(1)))
    .default([]),
  /**
   * TLS for both ports (PEM files): the server's certificate chain and key; with a client CA, mutual TLS (a
   * client must present a certificate that CA signed). The files are re-read every tlsReloadSecs and a valid
   * change takes effect for new connections without a restart; connections already open keep theirs.
   */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  tlsClientCa: z.string().min(1).optional(),
  tlsReloadSecs: z.coerce.number().min(0.1).max(86_400).default(10),
  /** The access policy (YAML): API keys, JWT verification, per-model permissions, rate and size limits. See src/security. */
  authConfig: z.string().min(1).optional(),
  /** Seconds between checks of the access policy (and its JWT key file) for changes, applied without a restart. */
  authReloadSecs: z.coerce.number().min(0.1).max(86_400).default(10),
  /** gRPC: most concurrent calls (HTTP/2 streams) on one connection; 0 = grpc-js default (no limit). */
  maxConcurrentStreams: z.coerce.number().int().min(0).max(1_000_000).default(0),
  /** How long shutdown waits for in-flight requests before closing them. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(10_000),
  /** One info line per request (method, model, version, status, duration, cache, batch, trace id). */
  accessLog: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** Strict: health "" and /readyz are SERVING only while every model is READY; lax: once loading finished. */
  strictReadiness: z
    .preprocess((v) => (typeof v === 'boolean' ? String(v) : v), z.enum(['true', 'false']).default('true'))
    .transform((v) => v === 'true'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** auto = readable lines when stdout is a terminal, JSON lines otherwise. */
  logFormat: z.enum(['auto', 'json', 'pretty']).default('auto'),
});

export type ServerConfig = z.infer<typeof serverConfigSchema>;

/** Flag name, environment variable and config key, in one table so help, env and parsing agree. */
export const SERVER_SETTINGS: { flag: string; env: string; key: keyof ServerConfig; help: string }[] = [
  { flag: 'models', env: 'TENSORGATE_MODELS', key: 'modelRepository', help: 'model repository folder (default: the bundled models/)' },
  { flag: 'host', env: 'TENSORGATE_HOST', key: 'host', help: 'address to listen on (default 127.0.0.1; 0.0.0.0 for all)' },
  { flag: 'port', env: 'TENSORGATE_PORT', key: 'port', help: 'gRPC port (default 50051; 0 picks a free one)' },
  { flag: 'http-port', env: 'TENSORGATE_HTTP_PORT', key: 'httpPort', help: 'HTTP port for /metrics, /healthz, /readyz (default 8080; 0 picks a free one)' },
  { flag: 'http-headers-timeout-ms', env: 'TENSORGATE_HTTP_HEADERS_TIMEOUT_MS', key: 'httpHeadersTimeoutMs', help: 'HTTP: time for a request\'s headers to arrive, else 408 (default 10000)' },
  { flag: 'http-request-timeout-ms', env: 'TENSORGATE_HTTP_REQUEST_TIMEOUT_MS', key: 'httpRequestTimeoutMs', help: 'HTTP: time for a whole request to arrive, else 408 (default 30000)' },
  { flag: 'http-keep-alive-timeout-ms', env: 'TENSORGATE_HTTP_KEEP_ALIVE_TIMEOUT_MS', key: 'httpKeepAliveTimeoutMs', help: 'HTTP: idle keep-alive connections close after this (default 5000)' },
  { flag: 'http-idle-timeout-ms', env: 'TENSORGATE_HTTP_IDLE_TIMEOUT_MS', key: 'httpIdleTimeoutMs', help: 'HTTP: a socket silent this long is closed (default 60000)' },
  { flag: 'http-max-connections', env: 'TENSORGATE_HTTP_MAX_CONNECTIONS', key: 'httpMaxConnections', help: 'HTTP: most open connections, 0 = no cap (default 1000)' },
  { flag: 'workers', env: 'TENSORGATE_WORKERS', key: 'workers', help: 'inference worker threads per process (default: cores / processes, at most 4)' },
  { flag: 'intra-op-threads', env: 'TENSORGATE_INTRA_OP_THREADS', key: 'intraOpThreads', help: 'ONNX Runtime threads per session unless config.yaml sets them (default: cores / (processes x workers))' },
  { flag: 'processes', env: 'TENSORGATE_PROCESSES', key: 'processes', help: 'server processes sharing the ports, each loading every model; auto = one per core (default 1)' },
  { flag: 'solo-threads', env: 'TENSORGATE_SOLO_THREADS', key: 'soloThreads', help: 'ONNX Runtime threads for a run of a slow model that has the workers to itself; 1 = off (default: cores / processes)' },
  { flag: 'inline-max-run-us', env: 'TENSORGATE_INLINE_MAX_RUN_US', key: 'inlineMaxRunUs', help: 'models whose runs take at most this many µs run on the main thread, 0 = never (default 250)' },
  { flag: 'max-message-bytes', env: 'TENSORGATE_MAX_MESSAGE_BYTES', key: 'maxMessageBytes', help: 'largest gRPC message in bytes (default 64 MiB)' },
  { flag: 'max-elements', env: 'TENSORGATE_MAX_ELEMENTS', key: 'maxElements', help: 'most tensor elements per request (default 16M)' },
  { flag: 'max-text-bytes', env: 'TENSORGATE_MAX_TEXT_BYTES', key: 'maxTextBytes', help: 'most UTF-8 bytes of input_text per request (default 64 KiB)' },
  { flag: 'cache-max-bytes', env: 'TENSORGATE_CACHE_MAX_BYTES', key: 'cacheMaxBytes', help: 'result cache size in bytes, 0 = off (default 256 MiB)' },
  { flag: 'job-ttl-secs', env: 'TENSORGATE_JOB_TTL_SECS', key: 'jobTtlSecs', help: 'async jobs: seconds a finished job\'s result is kept, and the most an unfinished job may take (default 600)' },
  { flag: 'max-jobs', env: 'TENSORGATE_MAX_JOBS', key: 'maxJobs', help: 'async jobs: most jobs held, unfinished and finished; 0 = async jobs off (default 1000)' },
  { flag: 'max-job-result-bytes', env: 'TENSORGATE_MAX_JOB_RESULT_BYTES', key: 'maxJobResultBytes', help: 'async jobs: most bytes of results held, oldest finished evicted first (default 64 MiB)' },
  { flag: 'max-connection-age-ms', env: 'TENSORGATE_MAX_CONNECTION_AGE_MS', key: 'maxConnectionAgeMs', help: 'gRPC: close connections (GOAWAY) older than this, +/-10%, so clients reconnect and rebalance; 0 = never (default 0)' },
  { flag: 'max-connection-age-grace-ms', env: 'TENSORGATE_MAX_CONNECTION_AGE_GRACE_MS', key: 'maxConnectionAgeGraceMs', help: 'gRPC: time calls still get after that GOAWAY before the connection is closed; 0 = no limit (default 0)' },
  { flag: 'keepalive-time-ms', env: 'TENSORGATE_KEEPALIVE_TIME_MS', key: 'keepaliveTimeMs', help: 'gRPC: ping a connection silent this long; 0 = no pings (default 0)' },
  { flag: 'keepalive-timeout-ms', env: 'TENSORGATE_KEEPALIVE_TIMEOUT_MS', key: 'keepaliveTimeoutMs', help: 'gRPC: drop a connection whose ping is unanswered this long; 0 = grpc-js default, 20000 (default 0)' },
  { flag: 'model-control-mode', env: 'TENSORGATE_MODEL_CONTROL_MODE', key: 'modelControlMode', help: 'none|poll|explicit: load all at start | and follow the folder | load on request (default none)' },
  { flag: 'repository-poll-secs', env: 'TENSORGATE_REPOSITORY_POLL_SECS', key: 'repositoryPollSecs', help: 'poll mode: seconds between scans of the repository (default 15)' },
  { flag: 'load-model', env: 'TENSORGATE_LOAD_MODEL', key: 'loadModels', help: 'explicit mode: models to load at start, comma-separated; * = all (default none)' },
  { flag: 'tls-cert', env: 'TENSORGATE_TLS_CERT', key: 'tlsCert', help: 'TLS on both ports: PEM certificate chain file (with --tls-key)' },
  { flag: 'tls-key', env: 'TENSORGATE_TLS_KEY', key: 'tlsKey', help: 'TLS: PEM private key file of --tls-cert' },
  { flag: 'tls-client-ca', env: 'TENSORGATE_TLS_CLIENT_CA', key: 'tlsClientCa', help: 'mutual TLS: clients must present a certificate signed by this PEM CA bundle' },
  { flag: 'tls-reload-secs', env: 'TENSORGATE_TLS_RELOAD_SECS', key: 'tlsReloadSecs', help: 'TLS: seconds between checks of the certificate files for a rotation (default 10)' },
  { flag: 'auth-config', env: 'TENSORGATE_AUTH_CONFIG', key: 'authConfig', help: 'access policy YAML: API keys, JWT, per-model permissions, rate limits (default: none, every call allowed)' },
  { flag: 'auth-reload-secs', env: 'TENSORGATE_AUTH_RELOAD_SECS', key: 'authReloadSecs', help: 'seconds between checks of --auth-config (and its JWT key file) for changes, applied without a restart (default 10)' },
  { flag: 'max-concurrent-streams', env: 'TENSORGATE_MAX_CONCURRENT_STREAMS', key: 'maxConcurrentStreams', help: 'gRPC: most concurrent calls on one connection, 0 = no limit (default 0)' },
  { flag: 'shutdown-grace-ms', env: 'TENSORGATE_SHUTDOWN_GRACE_MS', key: 'shutdownGraceMs', help: 'drain time on SIGTERM before in-flight calls are closed (default 10000)' },
  { flag: 'access-log', env: 'TENSORGATE_ACCESS_LOG', key: 'accessLog', help: 'true|false: log one line per request (default true)' },
  { flag: 'strict-readiness', env: 'TENSORGATE_STRICT_READINESS', key: 'strictReadiness', help: 'true|false: ready only while every model is READY; false: once loading finished (default true)' },
  { flag: 'log-level', env: 'TENSORGATE_LOG_LEVEL', key: 'logLevel', help: 'fatal|error|warn|info|debug|trace|silent (default info)' },
  { flag: 'log-format', env: 'TENSORGATE_LOG_FORMAT', key: 'logFormat', help: 'auto|json|pretty: readable lines on a terminal, JSON otherwise (default auto)' },
];

export function resolveServerConfig(flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv): ServerConfig {
  const raw: Record<string, unknown> = {};
  for (const s of SERVER_SETTINGS) {
    const value = flags[s.flag] ?? env[s.env];
    if (value !== undefined && value !== '') raw[s.key] = value;
  }
  const parsed = serverConfigSchema.safeParse(raw);
  if (!parsed.success) {
    // Name the flag (and variable) and the value given, not the internal key: that is what the user typed.
    const problems = parsed.error.issues.map((issue) => {
      const setting = SERVER_SETTINGS.find((x) => x.key === issue.path[0]);
      if (!setting) return describeIssues(new z.ZodError([issue]));
      const given = flags[setting.flag] !== undefined ? `--${setting.flag}` : setting.env;
      const value = String(raw[setting.key]);
      const shown = value.length > 40 ? `${value.slice(0, 40)}...` : value;
      return `${given} ${JSON.stringify(shown)}: ${issue.message.replace(/^Invalid input: /, '')} (--${setting.flag}: ${setting.help})`;
    });
    throw new Error(`invalid setting${problems.length > 1 ? 's' : ''}: ${problems.join('; ')}`);
  }
  return parsed.data;
}
