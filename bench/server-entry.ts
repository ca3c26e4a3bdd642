/**
 * Child-process entry: a real TensorgateServer on 127.0.0.1, an ephemeral port, the model repository
 * given as argv[2] (or BENCH_MODEL_REPOSITORY). Speaks the protocol in entry-ipc.ts; its request, row
 * and batch counts come from the scheduler's 'batch' events, i.e. executions that really ran, and the
 * inference time from its 'batch-done' events (the workers' session.run time).
 *
 * argv[3] (optional): the result cache's size in bytes, default 0 (off). With the cache on, the stats
 * reply also carries the window's cache hits/misses/coalesced (server.cache.stats(), as deltas).
 * Tracing: exported when the OTEL_* environment asks for it (bench/run.ts sets it for the "tracing export"
 * section), started by the first import below, as the CLI does, before anything loads @grpc/grpc-js.
 *
 * Run by bench/run.ts; on its own: `node dist/bench/server-entry.js <models dir>` needs an IPC parent.
 */
// Must stay the first import: it starts the OpenTelemetry SDK (when OTEL_* asks for it) before the server's modules load.
import { telemetry } from '../src/telemetry/bootstrap';
import { SERVER_SETTINGS, serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { TensorgateServer } from '../src/server';
import { diag, DiagLogLevel } from '@opentelemetry/api';
import { serveIpc, type CacheWindow, type TracingWindow } from './entry-ipc';

/**
 * Counts the SDK's diag warnings and errors: "Dropped N spans because maxQueueSize reached" from the
 * BatchSpanProcessor, and failed exports. Without a diag logger they would vanish silently, and a
 * processor that drops spans under load makes export look cheaper than it is. The first other problem
 * is printed.
 */
function watchTracing(): TracingWindow {
  const w: TracingWindow = { droppedSpans: 0, problems: 0 };
  let printed = false;
  const onProblem = (message: string, ...args: unknown[]) => {
    const dropped = /Dropped (\d+) spans/.exec(message);
    if (dropped) {
      w.droppedSpans += Number(dropped[1]);
      return;
    }
    w.problems++;
    if (!printed) console.error('bench server-entry: OpenTelemetry:', message, ...args);
    printed = true;
  };
  const ignore = () => undefined;
  diag.setLogger({ error: onProblem, warn: onProblem, info: ignore, debug: ignore, verbose: ignore }, DiagLogLevel.WARN);
  return w;
}

const FIXED_SETTINGS = new Set(['host', 'port', 'httpPort', 'modelRepository', 'logLevel', 'cacheMaxBytes']);

function tuningFromEnv(): Record<string, string> {
  const known = SERVER_SETTINGS.filter((s) => s.key in serverConfigSchema.shape && !FIXED_SETTINGS.has(s.key) && process.env[s.env]);
  return Object.fromEntries(known.map((s) => [s.key, process.env[s.env]!]));
}

async function main(): Promise<void> {
  const modelRepository = process.argv[2] ?? process.env.BENCH_MODEL_REPOSITORY;
  if (!modelRepository) throw new Error('usage: server-entry <model repository> [cache bytes]');
  const cacheMaxBytes = Number(process.argv[3] ?? 0);
  if (!Number.isSafeInteger(cacheMaxBytes) || cacheMaxBytes < 0) throw new Error(`server-entry: bad cache size '${process.argv[3]}'`);
  // Settings only some versions of the server have are set where the schema knows them.
  const known = (key: string) => key in serverConfigSchema.shape;
  const config = serverConfigSchema.parse({
    host: '127.0.0.1',
    port: 0,
    modelRepository,
    logLevel: 'warn',
    // The benchmark sends one fixed payload per model, and the bundled models are `deterministic`: with
    // the result cache on, every request after the first would be a cache hit and no model would run.
    // So the cache is off unless asked for (the "cache-hit path" section measures exactly that). (run.ts
    // flags windows where the server ran fewer requests than the clients got answers, should this
    // setting ever stop working.)
    ...(known('cacheMaxBytes') ? { cacheMaxBytes } : {}),
    // An ephemeral port for /metrics: a fixed 8080 could be taken by anything else on the machine.
    ...(known('httpPort') ? { httpPort: 0 } : {}),
    // For A/B runs (bench/ab.ts): tuning settings from TENSORGATE_* variables, as the CLI reads them
    // (--workers, --intra-op-threads, --inline-max-run-us...); the ones fixed above stay fixed.
    ...tuningFromEnv(),
  });
  const server = new TensorgateServer(config, createLogger(config.logLevel));
  const cacheCounts = (): CacheWindow => {
    const s = server.cache?.stats();
    return { hits: s?.hits ?? 0, misses: s?.misses ?? 0, coalesced: s?.coalesced ?? 0 };
  };
  let cacheBase = cacheCounts();
  const tracing = telemetry ? watchTracing() : undefined;
  const ipc = serveIpc(
    // Spans still buffered are flushed after the server has stopped (as the CLI does).
    () => server.shutdown(1000).finally(() => telemetry?.shutdown().catch(() => undefined)),
    server.pool.workerCount,
    {
      reset: () => {
        cacheBase = cacheCounts();
        if (tracing) tracing.droppedSpans = tracing.problems = 0;
      },
      read: () => {
        const now = cacheCounts();
        const cache = { hits: now.hits - cacheBase.hits, misses: now.misses - cacheBase.misses, coalesced: now.coalesced - cacheBase.coalesced };
        return { ...(server.cache ? { cache } : {}), ...(tracing ? { tracing: { ...tracing } } : {}) };
      },
    },
  );
  server.scheduler.on('batch', (b: { key: string; requests: number; rows: number }) => {
    ipc.counters.batches++;
    ipc.counters.requests += b.requests;
    ipc.counters.rows += b.rows;
  });
  // Worker compute time of finished executions: tells idle workers (a dispatch stall) from busy ones.
  server.scheduler.on('batch-done', (b: { computeMs: number; ok: boolean }) => {
    if (b.ok) ipc.counters.computeMs += b.computeMs;
  });
  const port = await server.start();
  const broken = server.repository.list().filter((m) => m.versions.every((v) => v.state !== 'READY'));
  if (broken.length > 0) throw new Error(`models not READY: ${broken.map((m) => `${m.name} (${m.reason || m.versions.map((v) => v.reason).join('; ')})`).join(', ')}`);
  ipc.ready(port, server.httpPort);
}

main().catch((err: unknown) => {
  console.error('bench server-entry failed:', err);
  process.exit(1);
});
