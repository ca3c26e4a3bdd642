/**
 * The "tracing export" section: the same tensorgate setup as "batching on" (bundled configs, cache off),
 * once without tracing and once exporting every span over OTLP http/protobuf to a local sink process
 * (bench/otlp-sink-entry.ts), at the same concurrencies, measured alternately (off, on per concurrency)
 * so that drift of the machine hits both alike. Target: export costs less than 10% of the throughput.
 * The sink's counts over the window prove the spans arrived; its CPU counts as the benchmark's own.
 */
import { ServerChild } from './child';
import { pickConcurrency, type Measure, type MeasuredPoint } from './cache-hit';
import type { LoadPoint } from './load-generator';
import { errorText, f0, f2, mainUsPerReq, pct, procUsPerReq, verdict, type Verdict } from './report';
import type { BenchModel } from './workload';

export const TRACING_MODEL: BenchModel = 'mlp';
const TRACING_CONCURRENCY = [16, 64];
const MAX_COST = 0.1;

export interface TracingPoint {
  concurrency: number;
  off: MeasuredPoint;
  on: MeasuredPoint;
}

export interface TracingResult {
  model: BenchModel;
  /** OTEL_* variables of the exporting server (the sink's port varies per run). */
  env: Record<string, string>;
  points: TracingPoint[];
}

/** Throughput lost to export: 1 - on/off. */
export const exportCost = (t: TracingPoint) => 1 - t.on.reqPerS / t.off.reqPerS;

function withoutOtel(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('OTEL_')));
}

export async function measureTracing(repository: string, configured: number[], measure: Measure, log: (l: string) => void): Promise<TracingResult> {
  const sink = await ServerChild.start('otlp-sink-entry', []);
  const servers: ServerChild[] = [];
  try {
    const base = withoutOtel(process.env);
    const otel = {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://${sink.address}/v1/traces`,
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    const off = await ServerChild.start('server-entry', [repository], { env: base });
    servers.push(off);
    const on = await ServerChild.start('server-entry', [repository], { env: { ...base, ...otel } });
    servers.push(on);
    const points: TracingPoint[] = [];
    for (const c of pickConcurrency(TRACING_CONCURRENCY, configured)) {
      // The sink is a companion of both: with export off it must receive nothing.
      const pOff = await measure(off, TRACING_MODEL, c, [sink]);
      const pOn = await measure(on, TRACING_MODEL, c, [sink]);
      const t = { concurrency: c, off: pOff, on: pOn };
      points.push(t);
      const s = pOn.companions?.[0]?.sink;
      log(
        `  ${'tracing'.padEnd(12)} ${TRACING_MODEL.padEnd(9)} c=${String(c).padEnd(3)} off ${pOff.reqPerS.toFixed(0).padStart(6)} req/s, on ${pOn.reqPerS.toFixed(0).padStart(6)} req/s` +
          `  cost ${pct(exportCost(t))}  sink: ${s?.requests ?? 0} exports, ${s?.spans ?? 0} spans, ${((s?.bytes ?? 0) / 1024).toFixed(0)} KiB`,
      );
    }
    return { model: TRACING_MODEL, env: { ...otel, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:<sink port>/v1/traces' }, points };
  } finally {
    // Servers first: the exporting one flushes its last spans to the sink as it stops.
    for (const s of servers) await s.stop();
    await sink.stop();
  }
}

const sinkOf = (p: LoadPoint) => p.companions?.[0];

function row(label: string, p: LoadPoint, vsOff: string): string {
  const sink = sinkOf(p);
  const sec = p.windowMs / 1000;
  const k = sink?.sink;
  const perSec = (n: number | undefined) => (k ? f0((n ?? 0) / sec) : '-');
  return (
    `| ${p.concurrency} | ${label} | ${f0(p.reqPerS)} | ${f2(p.p50Ms)} | ${f2(p.p99Ms)} | ${errorText(p.errors)} | ${f0(mainUsPerReq(p))} | ${f0(procUsPerReq(p))} | ` +
    `${f0(p.loadgenCpuPct)}% | ${sink ? `${f0((sink.processCpuUs / 1000 / sink.windowMs) * 100)}%` : '-'} | ${f0(p.otherCpuPct)}% | ${vsOff} | ` +
    `${perSec(k?.requests)} | ${perSec(k?.spans)} | ${k && p.ok > 0 ? f2(k.spans / p.ok) : '-'} | ${k ? f0(k.bytes / 1024 / sec) : '-'} | ${k && k.spans > 0 ? f0(k.bytes / k.spans) : '-'} | ` +
    `${p.server.tracing ? `${p.server.tracing.droppedSpans}${p.server.tracing.problems ? ` (+${p.server.tracing.problems} other SDK warnings)` : ''}` : '-'} |`
  );
}

export function tracingSection(r: TracingResult | undefined): string {
  if (!r) return ['## Tracing export', '', `Not measured: BENCH_MODELS leaves out ${TRACING_MODEL}.`].join('\n');
  const env = Object.entries(r.env).map(([k, v]) => `${k}=${v}`).join(' ');
  const lines = [
    '## Tracing export',
    '',
    `${r.model}, bundled config (dynamic batching on), result cache off: "off" as in Load results, "on" with \`${env}\` ` +
      '(OpenTelemetry Node SDK started before the server loads, as the CLI does; default sampler, so every span is exported) to a local OTLP sink process ' +
      'that reads and counts each POST /v1/traces and answers 200. Off and on are measured alternately at each concurrency. ' +
      'sink CPU: the sink process, % of one core; exports, spans and KiB per second: what the sink received during the window; spans/req: per answered request; ' +
      'dropped spans: the SDK\'s "Dropped N spans because maxQueueSize reached" warnings during the window (spans never exported, so not paid for).',
    '',
    '| c | export | req/s | p50 ms | p99 ms | errors | main µs/req | process µs/req | loadgen CPU | sink CPU | other CPU | vs off | exports/s | spans/s | spans/req | KiB/s | bytes/span | dropped spans |',
    '|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const t of r.points) {
    lines.push(row('off', t.off, '100%'));
    lines.push(row('on', t.on, `${pct(t.on.reqPerS / t.off.reqPerS)} (cost ${pct(exportCost(t))})`));
  }
  return lines.join('\n');
}

export function tracingVerdicts(r: TracingResult | undefined): Verdict[] {
  if (!r) return [{ target: `${TRACING_MODEL} tracing export on: throughput cost < 10%`, pass: undefined, detail: `not measured (${TRACING_MODEL} not in BENCH_MODELS)` }];
  return r.points.map((t) => {
    const target = `${r.model} c=${t.concurrency} batching on: tracing export costs < 10% of req/s`;
    const sink = sinkOf(t.on)?.sink;
    const detail =
      `${f0(t.on.reqPerS)} req/s exporting vs ${f0(t.off.reqPerS)} without: cost ${(exportCost(t) * 100).toFixed(1)}%; ` +
      `main thread ${f0(mainUsPerReq(t.on))} vs ${f0(mainUsPerReq(t.off))} µs/req; ` +
      `sink got ${sink?.requests ?? 0} exports, ${sink?.spans ?? 0} spans (${t.on.ok > 0 && sink ? f2(sink.spans / t.on.ok) : '-'}/req), ${f0((sink?.bytes ?? 0) / 1024)} KiB in the window` +
      (t.on.server.tracing?.droppedSpans ? `; the SDK dropped ${t.on.server.tracing.droppedSpans} spans (queue full), so not all spans were paid for` : '; no spans dropped');
    // No spans at the sink: nothing was exported, so "on" measured no export at all.
    if (!sink || sink.requests === 0 || sink.bytes === 0) return { target, pass: undefined, detail: `no spans reached the sink, so export was not measured: ${detail}` };
    const offSink = sinkOf(t.off)?.sink;
    const leak = offSink && offSink.requests > 0 ? ` (the sink also got ${offSink.requests} exports during the "off" window)` : '';
    return verdict(target, exportCost(t), MAX_COST, true, detail + leak);
  });
}
