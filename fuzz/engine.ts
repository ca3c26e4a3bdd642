/**
 * One fuzz run: starts the server (a child process), replays the corpus, sends the generated inputs at a
 * bounded concurrency (config inputs in-process, one at a time), checks each answer's invariants and the
 * server's (alive, no error-level log line, no UNKNOWN/INTERNAL request counted in /metrics, RSS flat over the
 * second half), and returns a summary. Shared by `npm run fuzz` (fuzz/run.ts) and test/fuzz.test.ts.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../src/paths';
import type { Case, Outcome } from './case';
import { Corpus } from './corpus';
import { ConfigExecutor } from './exec-config';
import { GrpcExecutor } from './exec-grpc';
import { HttpExecutor } from './exec-http';
import { startServer, type FuzzServer } from './server';
import { cycle, generate, inputSeed, TARGETS, warmupCases, type Target } from './targets';

export const CORPUS_DIR = path.join(PACKAGE_ROOT, 'fuzz/corpus');

export interface FuzzOptions {
  inputs: number;
  seed: number;
  /** Only these targets (all when empty). */
  targets: string[];
  /** Calls in flight at once over the network. */
  concurrency: number;
  /** Every call's deadline; an input that gets no answer within it is a hang. */
  hangMs: number;
  /** Most RSS growth of the server over the run's second half. */
  rssBoundBytes: number;
  corpusDir: string;
  replayCorpus: boolean;
  writeCorpus: boolean;
  /** Progress lines go here (none when undefined). */
  log?: (line: string) => void;
}

export interface Violation {
  target: string;
  /** The input's seed (-1: a corpus entry or a whole-run check). */
  seed: number;
  source: string;
  case?: Case;
  outcome?: Outcome;
  problems: string[];
}

export interface FuzzSummary {
  seed: number;
  inputs: number;
  corpusReplayed: number;
  perTarget: Record<string, { inputs: number; codes: Record<string, number> }>;
  /** tensorgate_requests_total by code, from the server's /metrics at the end. */
  serverCodes: Record<string, number>;
  rss: { warm: number; mid: number; end: number; max: number };
  seconds: number;
  networkInputs: number;
  corpusAdded: string[];
  /** Outcomes that were known findings (fuzz/known-findings.ts), by id. */
  known: Record<string, number>;
  /**
   * The server's V8 heap in use, lowest of the samples taken every 1,000 inputs in the tenth of the run after
   * its half and in its last tenth (a sample holds garbage not yet collected; the lowest is closest to what is
   * live), and its external (Buffer, ArrayBuffer) memory at the same samples. For the report: RSS is what is bounded.
   */
  heap: { mid: number; end: number; externalMid: number; externalEnd: number };
  violations: Violation[];
}

type Executor = (c: Case) => Promise<Outcome>;

export async function runFuzz(o: FuzzOptions): Promise<FuzzSummary> {
  const targets = o.targets.length ? TARGETS.filter((t) => o.targets.includes(t.name)) : [...TARGETS];
  if (targets.length === 0) throw new Error(`no such target: ${o.targets.join(', ')}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
  const started = performance.now();
  const server = await startServer();
  const grpc = new GrpcExecutor(server.grpcAddress, o.hangMs);
  const httpx = new HttpExecutor(server.httpPort, o.hangMs, o.concurrency);
  const config = new ConfigExecutor();
  try {
    return await fuzzAgainst(server, o, targets, started, { grpc, http: httpx, config });
  } finally {
    grpc.close();
    httpx.close();
    config.close();
    await server.stop();
  }
}

async function fuzzAgainst(
  server: FuzzServer,
  o: FuzzOptions,
  targets: Target[],
  started: number,
  x: { grpc: GrpcExecutor; http: HttpExecutor; config: ConfigExecutor },
): Promise<FuzzSummary> {
  // Config cases share one temp folder: they run one after another, chained here.
  let configLane: Promise<unknown> = Promise.resolve();
  const execute: Executor = (c) => {
    if (c.kind === 'config') {
      const run = configLane.then(() => x.config.run(c));
      configLane = run.catch(() => undefined);
      return run;
    }
    return c.kind === 'http' ? x.http.run(c) : x.grpc.run(c);
  };
  const corpus = new Corpus(o.corpusDir, o.writeCorpus);
  const summary: FuzzSummary = {
    seed: o.seed, inputs: 0, corpusReplayed: 0, perTarget: {}, serverCodes: {}, rss: { warm: 0, mid: 0, end: 0, max: 0 },
    seconds: 0, networkInputs: 0, corpusAdded: corpus.added, known: {}, heap: { mid: 0, end: 0, externalMid: 0, externalEnd: 0 }, violations: [],
  };
  let errorLinesSeen = 0;
  const record = (target: string, seed: number, source: string, c: Case, outcome: Outcome) => {
    if (outcome.known) summary.known[outcome.known] = (summary.known[outcome.known] ?? 0) + 1;
    const t = (summary.perTarget[target] ??= { inputs: 0, codes: {} });
    t.inputs++;
    t.codes[outcome.code] = (t.codes[outcome.code] ?? 0) + 1;
    const problems = [...outcome.violations];
    if (!server.alive()) problems.push(`the server process exited: ${server.exitDescription()}`);
    if (server.errorLines.length > errorLinesSeen) {
      problems.push(...server.errorLines.slice(errorLinesSeen).map((l) => `error-level log line (an input in flight at the time): ${l}`));
      errorLinesSeen = server.errorLines.length;
    }
    if (problems.length) summary.violations.push({ target, seed, source, case: c, outcome, problems });
    corpus.consider(target, seed, c, { ...outcome, violations: problems });
  };

  for (const c of warmupCases()) {
    const outcome = await execute(c);
    if (outcome.code !== 'OK') throw new Error(`warm-up request failed (${outcome.code}: ${outcome.message}); the fuzzer needs the bundled models`);
  }

  if (o.replayCorpus) {
    const entries = corpus.load().filter((e) => targets.some((t) => t.name === e.target));
    await pool(entries.length, o.concurrency, async (i) => {
      const e = entries[i]!;
      record(e.target, e.seed, `corpus ${e.target}`, e.case, await execute(e.case));
    });
    summary.corpusReplayed = entries.length;
  }

  const order = cycle(targets);
  const marks = { warm: Math.floor(o.inputs * 0.1), mid: Math.floor(o.inputs * 0.5) };
  let completed = 0;
  const sampleRss = () => {
    const rss = server.alive() ? server.rss() : 0;
    summary.rss.max = Math.max(summary.rss.max, rss);
    return rss;
  };
  await pool(o.inputs, o.concurrency, async (i) => {
    if (!server.alive() && summary.violations.length) return; // crashed: the violation is recorded, stop sending
    const target = order[i % order.length]!;
    const seed = inputSeed(o.seed, i);
    const c = generate(target, seed);
    if (c.kind !== 'config') summary.networkInputs++;
    record(target.name, seed, 'generated', c, await execute(c));
    completed++;
    if (completed === marks.warm) summary.rss.warm = sampleRss();
    if (completed === marks.mid) summary.rss.mid = sampleRss();
    if (completed % 1000 === 0) {
      sampleRss();
      const window = completed > marks.mid && completed <= marks.mid + o.inputs / 10 ? 'mid' : completed > o.inputs * 0.9 ? 'end' : undefined;
      if (window && server.alive()) {
        const at = await scrape(server.httpPort);
        const key = window === 'mid' ? (['mid', 'externalMid'] as const) : (['end', 'externalEnd'] as const);
        if (!summary.heap[key[0]] || at.heapUsed < summary.heap[key[0]]) [summary.heap[key[0]], summary.heap[key[1]]] = [at.heapUsed, at.external];
      }
    }
    if (o.log && completed % 10_000 === 0) o.log(`  ${completed} inputs, ${Math.round(performance.now() - started) / 1000} s, RSS ${mib(sampleRss())} MiB, ${summary.violations.length} violations`);
  });
  summary.inputs = completed;
  summary.rss.end = sampleRss();
  if (!summary.rss.warm) summary.rss.warm = summary.rss.end;
  if (!summary.rss.mid) summary.rss.mid = summary.rss.warm;

  if (server.alive()) {
    const scraped = await scrape(server.httpPort);
    summary.serverCodes = scraped.codes;
    // Each known finding that ended INTERNAL was counted once by the server; any INTERNAL beyond those is not known.
    const knownInternal = Object.values(summary.known).reduce((n, k) => n + k, 0);
    const faults = Object.entries(summary.serverCodes).filter(([code, n]) => code === 'UNKNOWN' || (code === 'INTERNAL' && n > knownInternal));
    if (faults.length) summary.violations.push({ target: 'server', seed: -1, source: '/metrics', problems: faults.map(([c, n]) => `tensorgate_requests_total counted ${n} requests with code ${c}`) });
  } else if (!summary.violations.some((v) => v.problems.some((p) => p.startsWith('the server process exited')))) {
    summary.violations.push({ target: 'server', seed: -1, source: 'run', problems: [`the server process exited: ${server.exitDescription()}`] });
  }
  const growth = summary.rss.end - summary.rss.mid;
  if (o.inputs >= 10_000 && growth > o.rssBoundBytes) {
    summary.violations.push({ target: 'server', seed: -1, source: 'RSS', problems: [`RSS grew ${mib(growth)} MiB over the second half (${mib(summary.rss.mid)} -> ${mib(summary.rss.end)} MiB), above the bound of ${mib(o.rssBoundBytes)} MiB`] });
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

export const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

/** Runs body(0..n-1) with at most `limit` running at once. */
async function pool(n: number, limit: number, body: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) await body(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
}

/** From the server's /metrics: tensorgate_requests_total summed by its code label, the V8 heap in use, external memory. */
function scrape(port: number): Promise<{ codes: Record<string, number>; heapUsed: number; external: number }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => {
          const codes: Record<string, number> = {};
          for (const m of text.matchAll(/^tensorgate_requests_total\{[^}]*code="([A-Z_]+)"[^}]*\} (\S+)$/gm)) codes[m[1]!] = (codes[m[1]!] ?? 0) + Number(m[2]);
          const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
          resolve({ codes, heapUsed: gauge('tensorgate_nodejs_heap_size_used_bytes'), external: gauge('tensorgate_nodejs_external_memory_bytes') });
        });
      })
      .on('error', reject);
  });
}
