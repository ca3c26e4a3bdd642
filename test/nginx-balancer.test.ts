/**
 * A real nginx (Debian's nginx-light) running the shipped deploy/nginx/nginx.conf, in front of two real
 * `tensorgate serve` replicas, under continuous load from several grpc-js clients: replica A gets SIGTERM
 * (drains, exits) and is started again on its ports. The target is 0 failed calls, and calls reaching both
 * replicas before A's drain and after its restart. Only the config's listen ports, replica addresses and
 * access log path are rewritten (to loopback ports and a temp folder).
 *
 * Waits are events: log lines, process exits, health SERVING, a number of answered calls. Never a sleep.
 *
 * The clients retry UNAVAILABLE (tensorgate's client settings). NGINX_TEST_NO_CLIENT_RETRIES=1 turns the
 * retries off to measure what nginx and the drain achieve alone: 1-3 failed calls per drain where we measured,
 * from nginx's "upstream sent goaway ... while reading response header" (a call nginx had just sent on a
 * kept-alive connection that the replica's drain GOAWAY did not take; nginx never resends a gRPC request),
 * and, rarely, UNAVAILABLE "no ready version" from the restarted replica while it still loads its models.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { createModelClient, type ModelServiceClient } from '../src/client/model-client';
import { copyBundledModel, f32Tensor, PACKAGE_ROOT, tempDir, unary } from './common';
import { check, healthClient, watch } from './health-client';
import { startServe, type LogLine, type ServeProcess } from './serve-process';

const NO_CLIENT_RETRIES = process.env.NGINX_TEST_NO_CLIENT_RETRIES === '1';
const NGINX_CONF = path.join(PACKAGE_ROOT, 'deploy', 'nginx', 'nginx.conf');
const INSTALL = 'apt-get install -y --no-install-recommends nginx-light  (.ci/run does this)';

/** The nginx binary, or a failure that says how to install one with the gRPC and HTTP/2 modules. */
function requireNginx(): string {
  const candidates = ['/usr/sbin/nginx', ...(process.env.PATH ?? '').split(':').map((d) => path.join(d, 'nginx'))];
  const bin = candidates.find((c) => fs.existsSync(c));
  if (!bin) assert.fail(`the nginx balancer test needs nginx, which is not installed. Install it with: ${INSTALL}`);
  const version = spawnSync(bin, ['-V'], { encoding: 'utf8' });
  const built = `${version.stdout}${version.stderr}`;
  if (built.includes('--without-http_grpc_module') || !built.includes('--with-http_v2_module')) {
    assert.fail(`${bin} lacks the gRPC or HTTP/2 module (${built.split('\n')[0]}). Install Debian's build with: ${INSTALL}`);
  }
  return bin;
}

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  server.close();
  await once(server, 'close');
  return port;
}

/** deploy/nginx/nginx.conf with its ports, replicas and log path pointed at this test; each rewrite must apply. */
function renderConfig(ports: { grpc: number; http: number }, replicas: { grpc: number; http: number }[], dir: string): string {
  let text = fs.readFileSync(NGINX_CONF, 'utf8');
  const rewrite = (pattern: RegExp, replace: (...m: string[]) => string, expected: number) => {
    const found = text.match(pattern)?.length ?? 0;
    assert.equal(found, expected, `deploy/nginx/nginx.conf changed: expected ${expected} match(es) of ${pattern}, found ${found}; update this test's rewrite`);
    text = text.replace(pattern, replace as (substring: string, ...args: any[]) => string);
  };
  rewrite(/listen 50051 http2;/g, () => `listen 127.0.0.1:${ports.grpc} http2;`, 1);
  rewrite(/listen 8080;/g, () => `listen 127.0.0.1:${ports.http};`, 1);
  rewrite(/server tensorgate-(\d):50051/g, (_, n) => `server 127.0.0.1:${replicas[Number(n) - 1]!.grpc}`, 2);
  rewrite(/server tensorgate-(\d):8080/g, (_, n) => `server 127.0.0.1:${replicas[Number(n) - 1]!.http}`, 2);
  rewrite(/access_log \/var\/log\/nginx\/tensorgate-access\.log/g, () => `access_log ${path.join(dir, 'access.log')}`, 1);
  return text;
}

/** nginx in the foreground with its own prefix, config, pid and error log in `dir`. */
function startNginx(bin: string, dir: string, config: string): { child: ChildProcess; exited: Promise<unknown>; errorLog: () => string } {
  const confFile = path.join(dir, 'nginx.conf');
  fs.writeFileSync(confFile, config);
  const errorLog = path.join(dir, 'error.log');
  const child = spawn(bin, ['-p', `${dir}/`, '-c', confFile, '-e', errorLog, '-g', `daemon off; pid ${path.join(dir, 'nginx.pid')};`], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = once(child, 'exit');
  return { child, exited, errorLog: () => (fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : '') };
}

/** Resolves once `n` more lines matching `match` have come from the process (counting from now). */
function moreLines(proc: ServeProcess, match: (l: LogLine) => boolean, n: number): Promise<LogLine> {
  // waitFor tests each line once, in order (those already seen first), so the call count is the line's index.
  let index = 0;
  let seen = 0;
  const start = proc.lines.length;
  return proc.waitFor((l) => index++ >= start && match(l) && ++seen >= n);
}

const isPredict = (l: LogLine) => l.access === true && l.method === 'Predict';
const servingLine = (l: LogLine) => typeof l.msg === 'string' && l.msg.startsWith('tensorgate serving on');

/** Several clients, each its own channel (connection) to nginx, calling in a loop until stop(). */
function load(clients: ModelServiceClient[], loopsPerClient: number) {
  let stopped = false;
  const stats = { ok: 0, failed: 0, errors: new Map<string, number>() };
  const answered = new EventEmitter();
  const loops = clients.flatMap((client, c) =>
    Array.from({ length: loopsPerClient }, async (_, loop) => {
      for (let i = 0; !stopped; i++) {
        const seed = (c * loopsPerClient + loop) * 1_000_000 + i;
        try {
          await unary(client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], Float32Array.from({ length: 64 }, (_, k) => (seed + k) % 101))] }, { deadlineMs: 30_000 });
          stats.ok++;
          answered.emit('ok');
        } catch (err) {
          stats.failed++;
          const e = err as grpc.ServiceError;
          const key = `${grpc.status[e.code]}: ${e.details}`;
          stats.errors.set(key, (stats.errors.get(key) ?? 0) + 1);
        }
      }
    }),
  );
  return {
    stats,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

test('nginx (deploy/nginx/nginx.conf) in front of two replicas: one drains on SIGTERM and restarts under load, and no call fails', { timeout: 240_000 }, async () => {
  const nginxBin = requireNginx();
  const repo = tempDir('nginx-models');
  const work = tempDir('nginx');
  fs.chmodSync(work.dir, 0o755); // nginx's workers (user www-data when started as root) write their temp files here
  copyBundledModel(repo.dir, 'mlp');
  const replicaArgs = (grpcPort: number, httpPort: number) => ['--models', repo.dir, '--port', String(grpcPort), '--http-port', String(httpPort), '--workers', '1', '--cache-max-bytes', '0', '--shutdown-grace-ms', '10000'];
  const processes: ServeProcess[] = [];
  let nginx: ReturnType<typeof startNginx> | undefined;
  const killAll = () => {
    for (const c of [...processes.map((p) => p.child), ...(nginx ? [nginx.child] : [])]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  process.once('exit', killAll);
  let running: ReturnType<typeof load> | undefined;
  const clients: ModelServiceClient[] = [];
  try {
    // Two replicas on free ports; their ports are read from their startup lines.
    const replicas: { grpc: number; http: number }[] = [];
    for (let i = 0; i < 2; i++) {
      const proc = startServe(replicaArgs(0, 0));
      processes.push(proc);
      const listening = await proc.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('listening:'));
      const serving = await proc.waitFor(servingLine);
      replicas.push({ grpc: serving.port as number, http: listening.httpPort as number });
    }
    let [a, b] = processes as [ServeProcess, ServeProcess];

    const ports = { grpc: await freePort(), http: await freePort() };
    nginx = startNginx(nginxBin, work.dir, renderConfig(ports, replicas, work.dir));
    const nginxFailed = nginx.exited.then(() => {
      throw new Error(`nginx exited: ${nginx!.errorLog().slice(-2000)}`);
    });
    nginxFailed.catch(() => undefined);

    // Several grpc-js clients with tensorgate's channel settings, each its own connection to nginx.
    for (let i = 0; i < 4; i++) clients.push(createModelClient(`127.0.0.1:${ports.grpc}`, {}, { retries: !NO_CLIENT_RETRIES }));
    await Promise.race([
      Promise.all(clients.map((c) => new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 30_000, (err) => (err ? reject(err) : resolve()))))),
      nginxFailed,
    ]);
    // The HTTP side answers through nginx too.
    const ready = await fetch(`http://127.0.0.1:${ports.http}/readyz`);
    assert.equal(ready.status, 200, 'GET /readyz through nginx');

    running = load(clients, 2);
    const before = { a: moreLines(a, isPredict, 50), b: moreLines(b, isPredict, 50) };
    await Promise.race([Promise.all([before.a, before.b]), nginxFailed]);

    // A drains: SIGTERM, then its exit (0) while the load goes on; B answers everything meanwhile.
    const bDuringDrain = moreLines(b, isPredict, 200);
    a.child.kill('SIGTERM');
    const [code, signal] = await a.exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `replica A exits cleanly after its drain; stderr: ${a.stderr().slice(-1000)}`);
    await bDuringDrain;
    const failedWhileDown = running.stats.failed;

    // A again, on the same ports: health SERVING, then nginx sends it calls again (after fail_timeout).
    a = startServe(replicaArgs(replicas[0]!.grpc, replicas[0]!.http));
    processes.push(a);
    await a.waitFor(servingLine);
    const health = healthClient(`127.0.0.1:${replicas[0]!.grpc}`);
    const updates = watch(health, '');
    try {
      for (let s = await updates.next(); s !== 'SERVING'; s = await updates.next());
      assert.equal(await check(health, ''), 'SERVING');
    } finally {
      updates.cancel();
      health.close();
    }
    await Promise.race([Promise.all([moreLines(a, isPredict, 50), moreLines(b, isPredict, 50)]), nginxFailed]);
    await running.stop();

    const { ok, failed, errors } = running.stats;
    const accessLog = fs.readFileSync(path.join(work.dir, 'access.log'), 'utf8').split('\n').filter(Boolean);
    const retriedByNginx = accessLog.filter((l) => /upstream=\S+, /.test(l)).length;
    const notOk = accessLog.filter((l) => l.includes('"POST /tensorgate.') && !/" 200 grpc_status=(0-|-0) /.test(l));
    console.log(
      `nginx balancer (client retries ${NO_CLIENT_RETRIES ? 'off' : 'on'}): ${ok} calls answered, ${failed} failed (${failedWhileDown} by the time A had drained and B had answered 200 more); ` +
        `nginx retried ${retriedByNginx} calls on the other replica; nginx answered ${notOk.length} calls with an error (gRPC UNAVAILABLE, which the clients ${NO_CLIENT_RETRIES ? 'did not retry' : 'retried'})`,
    );
    for (const [e, n] of errors) console.log(`  ${n} x ${e}`);
    for (const l of notOk.slice(0, 10)) console.log(`  nginx: ${l}`);
    // nginx's own account of each failure (connect() refused is expected while A is down: those were retried).
    const nginxErrors = nginx.errorLog().split('\n').filter((l) => /\[(error|crit|alert|emerg)\]/.test(l) && !l.includes('connect() failed (111'));
    for (const l of nginxErrors.slice(0, 10)) console.log(`  nginx error.log: ${l.replace(/, client: .*?(, upstream)/, '$1')}`);
    assert.equal(failed, 0, `failed calls through nginx: ${[...errors].map(([e, n]) => `${n} x ${e}`).join('; ')}`);
  } finally {
    await running?.stop();
    for (const c of clients) c.close();
    if (nginx && nginx.child.exitCode === null && nginx.child.signalCode === null) {
      nginx.child.kill('SIGTERM'); // fast shutdown: master and workers exit
      await nginx.exited;
    }
    for (const p of processes) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGKILL');
        await p.exited;
      }
    }
    process.off('exit', killAll);
    work.cleanup();
    repo.cleanup();
  }
});
