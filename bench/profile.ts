/**
 * Profiles the tensorgate server child under one benchmark load point: the server entry runs with
 * `--cpu-prof`, the same closed-loop load as `npm run bench` drives it, and the main thread's profile
 * (plus each inference worker's) is summarised by profile-summary.ts.
 *
 * `npm run build && BENCH_PROFILE_MODEL=mlp BENCH_PROFILE_BATCHING=on BENCH_PROFILE_CONCURRENCY=64 \
 *    node dist/bench/profile.js` (BENCH_SECONDS: measured window, default 10; BENCH_PROFILE_DIR: /tmp/prof;
 * BENCH_PROFILE_SERVER=noop profiles the no-op gRPC server instead, =naive the naive server, for comparison;
 * BENCH_PROFILE_CACHE_BYTES=N turns the result cache on, so the fixed payloads profile the cache-hit path;
 * BENCH_PROFILE_RPC=ModelInfer loads the v2 protocol's ModelInfer instead of Predict)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { captureResponses, ServerChild } from './child';
import { runLoad } from './load-generator';
import { summarise } from './profile-summary';
import { mainUsPerReq } from './report';
import { parseModels, writeRepository } from './workload';

async function main(): Promise<void> {
  const model = parseModels(process.env.BENCH_PROFILE_MODEL ?? 'mlp')[0]!;
  const batching = (process.env.BENCH_PROFILE_BATCHING ?? 'on') === 'on';
  const concurrency = Number(process.env.BENCH_PROFILE_CONCURRENCY ?? 64);
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const dir = process.env.BENCH_PROFILE_DIR ?? '/tmp/prof';
  fs.mkdirSync(dir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-profile-'));
  try {
    const repo = writeRepository(path.join(tmp, 'models'), [model], batching);
    const noop = process.env.BENCH_PROFILE_SERVER === 'noop';
    const cacheBytes = process.env.BENCH_PROFILE_CACHE_BYTES ?? '0';
    let args = [repo, cacheBytes];
    if (noop) {
      args = [path.join(tmp, 'responses.json')];
      const real = await ServerChild.start('server-entry', [repo]);
      await captureResponses(real, [model], args[0]!).finally(() => real.stop());
    }
    const naive = process.env.BENCH_PROFILE_SERVER === 'naive';
    const entry = noop ? 'noop-server-entry' : naive ? 'naive-server-entry' : 'server-entry';
    const server = await ServerChild.start(entry, args, { execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
    const pid = server.pid;
    try {
      const rpc = process.env.BENCH_PROFILE_RPC === 'ModelInfer' ? 'ModelInfer' : 'Predict';
      const p = await runLoad({ server, model, concurrency, warmupMs: 1500, measureMs: seconds * 1000, threads: 2, rpc });
      console.log(
        `${noop ? 'no-op server, ' : ''}${model} batching ${batching ? 'on' : 'off'} c=${concurrency}: ${p.reqPerS.toFixed(0)} req/s, p99 ${p.p99Ms.toFixed(2)} ms, ` +
          `main ${mainUsPerReq(p).toFixed(0)} µs/req, ` +
          (p.server.batches > 0 ? `batch rows ${(p.server.rows / p.server.batches).toFixed(2)}, workers busy ${((p.server.computeMs / (p.server.windowMs * p.server.workers)) * 100).toFixed(0)}%, ` : '') +
          `errors ${JSON.stringify(p.errors)}`,
      );
    } finally {
      await server.stop(30_000);
    }
    // Node names them CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
    const files = fs.readdirSync(dir).filter((f) => f.includes(`.${pid}.`) && f.endsWith('.cpuprofile')).sort((a, b) => Number(a.split('.')[4]) - Number(b.split('.')[4]));
    if (files.length === 0) throw new Error(`no profile for pid ${pid} in ${dir}`);
    for (const f of files) {
      const main = f.split('.')[4] === '0';
      console.log(`\n===== ${main ? 'MAIN THREAD' : `thread ${f.split('.')[4]}`}: ${path.join(dir, f)}`);
      console.log(summarise(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), main ? 30 : 8));
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error('bench profile failed:', err);
  process.exitCode = 1;
});
