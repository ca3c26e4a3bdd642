/**
 * `compare`'s report for people (an aligned table, units in every cell) and for programs (JSON, where a
 * difference that is not a number, because the shapes differ, is null).
 */
import type { CompareReport, Speed } from './compare-versions';

export function reportJson(report: CompareReport): string {
  return JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2);
}

export function reportTable(report: CompareReport): string {
  const { a, b } = report;
  const head = [`${report.model}: version ${a.version} (A) vs version ${b.version} (B)`, ''];
  const speed = (label: string, pick: (s: Speed) => string, sa: Speed | undefined, sb: Speed | undefined, ratio?: (x: Speed, y: Speed) => number): string[] => {
    const r = sa && sb && ratio ? `${ratio(sa, sb).toFixed(2)}x` : '';
    return [label, sa ? pick(sa) : '-', sb ? pick(sb) : '-', r];
  };
  const p50 = (s: Speed) => ms(s.p50Ms);
  const p99 = (s: Speed) => ms(s.p99Ms);
  const rps = (s: Speed) => `${Math.round(s.rowsPerSecond).toLocaleString('en-US')} rows/s`;
  const rows: string[][] = [
    ['', `A (v${a.version})`, `B (v${b.version})`, 'B/A'],
    ['model.onnx', kib(a.bytes), kib(b.bytes), `${report.sizeRatio.toFixed(2)}x`],
    speed('latency p50, batch 1', p50, a.batch1, b.batch1, (x, y) => y.p50Ms / x.p50Ms),
    speed('latency p99, batch 1', p99, a.batch1, b.batch1, (x, y) => y.p99Ms / x.p99Ms),
    speed('throughput, batch 1', rps, a.batch1, b.batch1, (x, y) => y.rowsPerSecond / x.rowsPerSecond),
    ['best batch (most rows/s)', String(a.best.batch), String(b.best.batch), ''],
    speed('latency p50, best batch', p50, a.best, b.best, (x, y) => y.p50Ms / x.p50Ms),
    speed('latency p99, best batch', p99, a.best, b.best, (x, y) => y.p99Ms / x.p99Ms),
    speed('throughput, best batch', rps, a.best, b.best, (x, y) => y.rowsPerSecond / x.rowsPerSecond),
  ];
  const changes: string[][] = [
    ['output', 'max |B-A|', 'mean |B-A|', 'top-1 agreement'],
    ...report.outputs.map((o) => [
      o.name,
      number(o.maxAbs),
      number(o.meanAbs),
      o.top1Agreement === undefined ? '- (last dim 1)' : `${percent(o.top1Agreement)} of ${o.top1Rows} rows`,
    ]),
  ];
  const lines = [...head, ...table(rows, [false, true, true, true]), '', ...table(changes, [false, true, true, true])];
  if (report.unmatchedOutputs.length > 0) lines.push(`not compared (only one version has them): ${report.unmatchedOutputs.join(', ')}`);
  if (report.accuracy) {
    const acc = report.accuracy;
    const points = ((acc.b - acc.a) * 100).toFixed(2);
    lines.push('', `task accuracy: A ${percent(acc.a)}, B ${percent(acc.b)} (B-A ${acc.b >= acc.a ? '+' : ''}${points} points); argmax of ${acc.output} vs label over ${acc.labelled} labelled rows`);
  } else {
    lines.push('', 'task accuracy: no labels in the inputs (give --data FILE with "label" on its rows)');
  }
  const threads = report.threadsFromConfig
    ? `${report.intraOpThreads} intra-op thread${report.intraOpThreads === 1 ? '' : 's'} (config session.intra_op_threads)`
    : '1 intra-op thread (config leaves threads to the server; 1 so both versions are measured alike and numbers compare across machines)';
  lines.push(
    '',
    `${threads}; inputs: ${report.inputs}; ${report.secondsPerBatchSize} s of runs per version per batch size (${report.batchSizes.join(', ')}), A and B interleaved; latency is ONNX Runtime's run time`,
  );
  return `${lines.join('\n')}\n`;
}

/** Columns padded to their widest cell; `right` aligns numbers to the right. */
function table(rows: string[][], right: boolean[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (right[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('   ').trimEnd());
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

function ms(value: number): string {
  return `${value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(2) : value.toPrecision(3)} ms`;
}

function number(value: number): string {
  if (!Number.isFinite(value)) return 'n/a (shapes differ)';
  if (value === 0) return '0';
  return Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5 ? value.toExponential(2) : String(Number(value.toPrecision(4)));
}

const percent = (share: number) => `${(share * 100).toFixed(2)}%`;
