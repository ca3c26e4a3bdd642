/**
 * Child-process entry: a real TensorgateServer on 127.0.0.1, an ephemeral port, the model repository
 * given as argv[2] (or BENCH_MODEL_REPOSITORY). Speaks the protocol in entry-ipc.ts; its request, row
 * and batch counts come from the scheduler's 'batch' events, i.e. executions that really ran, and the
 * inference time from its 'batch-done' events (the workers' session.run time).
 *
 * Run by bench/run.ts; on its own: `node dist/bench/server-entry.js <models dir>` needs an IPC parent.
 */
import { serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { TensorgateServer } from '../src/server';
import { serveIpc } from './entry-ipc';

async function main(): Promise<void> {
  const modelRepository = process.argv[2] ?? process.env.BENCH_MODEL_REPOSITORY;
  if (!modelRepository) throw new Error('usage: server-entry <model repository>');
  // Settings only some versions of the server have are set where the schema knows them.
  const known = (key: string) => key in serverConfigSchema.shape;
  const config = serverConfigSchema.parse({
    host: '127.0.0.1',
    port: 0,
    modelRepository,
    logLevel: 'warn',
    // The benchmark sends one fixed payload per model, and the bundled models are `deterministic`: with
    // the result cache on, every request after the first would be a cache hit and no model would run.
    // The cache's own speed is not what this measures. (run.ts flags windows where the server ran
    // fewer requests than the clients got answers, should this setting ever stop working.)
    ...(known('cacheMaxBytes') ? { cacheMaxBytes: 0 } : {}),
    // An ephemeral port for /metrics: a fixed 8080 could be taken by anything else on the machine.
    ...(known('httpPort') ? { httpPort: 0 } : {}),
  });
  const server = new TensorgateServer(config, createLogger(config.logLevel));
  const ipc = serveIpc(() => server.shutdown(1000), server.pool.workerCount);
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
  ipc.ready(port);
}

main().catch((err: unknown) => {
  console.error('bench server-entry failed:', err);
  process.exit(1);
});
