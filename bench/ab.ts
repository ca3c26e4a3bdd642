/**
 * A/B at single load points: tensorgate under two (or more) settings, measured alternately, so a change
 * made for speed is judged against its own "before" on the same machine minutes apart (on a noisy VM two
 * separate `npm run bench` runs differ by more than most changes). The no-op gRPC server is measured in
 * the same rounds, and every figure is also given relative to it.
 *
 * `npm run build && BENCH_AB="inline=TENSORGATE_INLINE_MAX_RUN_US=100;workers=TENSORGATE_INLINE_MAX_RUN_US=0" \
 *    BENCH_MODELS=mlp BENCH_CONCURRENCY=1,64 node dist/bench/ab.js`
 * BENCH_AB: `label=VAR=value,VAR=value;label=...`, environment given to the server child (server-entry.ts
 * reads the TENSORGATE_* settings it knows). BENCH_ROUNDS (default 2), BENCH_SECONDS (4), BENCH_WARMUP_SECONDS (1.5).
 * A value may name `{sink}`: an OTLP sink child (otlp-sink-entry.ts) is started and its address put there, e.g.
 * `on=OTEL_TRACES_EXPORTER=otlp,OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://{sink}/v1/traces,OTEL_BSP_SCHEDULE_DELAY=200`.
 * A variant's BENCH_SERVER_ENTRY=<path> runs that server-entry.js instead of this build's: another commit's build
 * (a `git worktree` of it, compiled), so a code change is measured against its "before" in the same rounds.
 * BENCH_AB_NAIVE=1 measures the naive server (naive-server-entry.ts) in every round too.
 * Prints a markdown table; with BENCH_AB_OUT=<file> also writes it there with the machine, command, date and commit.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { captureResponses, ServerChild } from './child';
import { runLoad, type LoadPoint } from './load-generator';
import { machine, revision } from './machine-facts';
import { waitForQuiet } from './machine-load';
import { mainUsPerReq } from './report';
import { parseConcurrency, parseModels, writeRepository, type BenchModel } from './workload';

interface Variant {
  label: string;
  env: Record<string, string>;
}

function variants(spec: string | undefined): Variant[] {
  if (!spec) throw new Error('BENCH_AB is required, e.g. BENCH_AB="a=TENSORGATE_INLINE_MAX_RUN_US=100;b=TENSORGATE_INLINE_MAX_RUN_US=0"');
  return spec.split(';').map((part) => {
    const [label, ...rest] = part.split('=');
    const env = Object.fromEntries(
      rest.join('=').split(',').filter(Boolean).map((kv) => {
        const i = kv.indexOf('=');
        return [kv.slice(0, i), kv.slice(i + 1)];
      }),
    );
    return { label: label!.trim(), env };
  });
}

interface Row {
  label: string;
  model: BenchModel;
  concurrency: number;
  round: number;
  point: LoadPoint;
}

async function measure(server: ServerChild, model: BenchModel, concurrency: number, companions: ServerChild[]): Promise<LoadPoint> {
  await waitForQuiet(10, 30_000, () => undefined);
  return runLoad({
    server,
    companions,
    model,
    concurrency,
    warmupMs: Number(process.env.BENCH_WARMUP_SECONDS ?? 1.5) * 1000,
    measureMs: Number(process.env.BENCH_SECONDS ?? 4) * 1000,
    threads: 2,
  });
}

async function main(): Promise<void> {
  const started = new Date();
  const models = parseModels(process.env.BENCH_MODELS ?? 'mlp');
  const levels = parseConcurrency(process.env.BENCH_CONCURRENCY, [1, 64]);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
  const all = variants(process.env.BENCH_AB);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-ab-'));
  const rows: Row[] = [];
  const sink = all.some((v) => Object.values(v.env).some((x) => x.includes('{sink}'))) ? await ServerChild.start('otlp-sink-entry', []) : undefined;
  try {
    const repo = writeRepository(path.join(tmp, 'models'), models, true);
    const responses = path.join(tmp, 'responses.json');
    const first = await ServerChild.start('server-entry', [repo]);
    await captureResponses(first, models, responses).finally(() => first.stop());
    for (let round = 1; round <= rounds; round++) {
      const naive: Variant[] = process.env.BENCH_AB_NAIVE === '1' ? [{ label: 'naive', env: {} }] : [];
      for (const v of [{ label: 'no-op grpc', env: {} }, ...naive, ...all] as Variant[]) {
        const { BENCH_SERVER_ENTRY: script, ...env } = v.env;
        const server =
          v.label === 'no-op grpc'
            ? await ServerChild.start('noop-server-entry', [responses])
            : v.label === 'naive'
              ? await ServerChild.start('naive-server-entry', [repo])
              : await ServerChild.start('server-entry', [repo], { env: { ...process.env, ...withSink(env, sink) }, ...(script ? { script } : {}) });
        try {
          for (const model of models) {
            for (const concurrency of levels) {
              const point = await measure(server, model, concurrency, sink ? [sink] : []);
              rows.push({ label: v.label, model, concurrency, round, point });
              console.error(`round ${round} ${v.label.padEnd(12)} ${model} c=${concurrency}: ${point.reqPerS.toFixed(0)} req/s, p50 ${point.p50Ms.toFixed(2)} ms, main ${mainUsPerReq(point).toFixed(0)} µs/req`);
            }
          }
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    await sink?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const table = report(rows);
  process.stdout.write(table);
  const out = process.env.BENCH_AB_OUT;
  if (out) {
    const m = machine();
    const header = [
      `# A/B: ${all.map((v) => `${v.label} (${Object.entries(v.env).map(([k, x]) => `${k}=${x}`).join(' ') || 'defaults'})`).join(' vs ')}`,
      '',
      `- machine: ${m.cpu}, ${m.cores} cores, Node ${process.version}; tensorgate at ${revision()}`,
      `- command: \`${Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_') && k !== 'BENCH_AB_OUT').map(([k, v]) => `${k}="${v}"`).join(' ')} node dist/bench/ab.js\``,
      `- date: ${started.toISOString()}; ${rounds} rounds, variants measured alternately; the load generator (2 threads) shares the machine`,
      '',
      '',
    ].join('\n');
    fs.writeFileSync(out, header + table);
  }
}

function withSink(env: Record<string, string>, sink: ServerChild | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, sink ? v.replaceAll('{sink}', sink.address) : v]));
}

function report(rows: Row[]): string {
  const naive = rows.some((r) => r.label === 'naive');
  const same = (label: string, r: Row) => rows.find((x) => x.label === label && x.model === r.model && x.concurrency === r.concurrency && x.round === r.round);
  const ratio = (r: Row, label: string) => {
    const other = same(label, r);
    return other && other.point.reqPerS > 0 ? r.point.reqPerS / other.point.reqPerS : undefined;
  };
  const lines = [
    `| variant | model | c | round | req/s | p50 ms | p99 ms | main µs/req | vs no-op (same round) |${naive ? ' vs naive (same round) |' : ''} spans/req exported | errors |`,
    `|---|---|---:|---:|---:|---:|---:|---:|---:|${naive ? '---:|' : ''}---:|---:|`,
  ];
  for (const r of rows) {
    const errors = Object.values(r.point.errors).reduce((a, b) => a + b, 0);
    const spans = r.point.companions?.[0]?.sink?.spans;
    const vsNoop = ratio(r, 'no-op grpc');
    const vsNaive = ratio(r, 'naive');
    lines.push(
      `| ${r.label} | ${r.model} | ${r.concurrency} | ${r.round} | ${r.point.reqPerS.toFixed(0)} | ${r.point.p50Ms.toFixed(2)} | ${r.point.p99Ms.toFixed(2)} | ${mainUsPerReq(r.point).toFixed(0)} | ${vsNoop !== undefined ? `${(vsNoop * 100).toFixed(0)}%` : '-'} |` +
        `${naive ? ` ${vsNaive !== undefined && r.label !== 'naive' ? `${vsNaive.toFixed(2)}x` : '-'} |` : ''}` +
        ` ${spans !== undefined && r.point.ok > 0 ? (spans / r.point.ok).toFixed(2) : '-'} | ${errors} |`,
    );
  }
  // Medians over the rounds: the figures to quote (each round's ratios are taken within that round first).
  lines.push('', `| variant | model | c | median req/s | median main µs/req | median vs no-op |${naive ? ' median vs naive |' : ''}`, `|---|---|---:|---:|---:|---:|${naive ? '---:|' : ''}`);
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const k = `${r.label}\u0000${r.model}\u0000${r.concurrency}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const group of groups.values()) {
    const r = group[0]!;
    const med = (xs: (number | undefined)[]) => median(xs.filter((x): x is number => x !== undefined));
    const vsNaive = med(group.map((g) => ratio(g, 'naive')));
    lines.push(
      `| ${r.label} | ${r.model} | ${r.concurrency} | ${med(group.map((g) => g.point.reqPerS))!.toFixed(0)} | ${med(group.map((g) => mainUsPerReq(g.point)))!.toFixed(0)} | ${(med(group.map((g) => ratio(g, 'no-op grpc'))) ?? 1).toFixed(2)}x |` +
        `${naive ? ` ${r.label === 'naive' || vsNaive === undefined ? '-' : `${vsNaive.toFixed(2)}x`} |` : ''}`,
    );
  }
  return lines.join('\n') + '\n';
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

main().catch((err: unknown) => {
  console.error('bench ab failed:', err);
  process.exit(1);
});
