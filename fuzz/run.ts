/**
 * `npm run fuzz -- [--inputs N] [--seed S] [--target NAME]... [--replay TARGET:SEED] [--concurrency C]
 *                  [--hang-ms MS] [--rss-bound-mib M] [--no-corpus-write] [--no-corpus]`
 *
 * A structure-aware fuzz run against a real server (see fuzz/engine.ts): prints the seed first, a summary at
 * the end, and every violation with the input that caused it and the command that replays it; exits 1 on any
 * violation. `--replay TARGET:SEED` sends that one input and prints it with its outcome.
 */
import { randomInt } from 'node:crypto';
import { CORPUS_DIR, mib, runFuzz, type FuzzOptions, type FuzzSummary } from './engine';
import { startServer } from './server';
import { ConfigExecutor } from './exec-config';
import { GrpcExecutor } from './exec-grpc';
import { HttpExecutor } from './exec-http';
import { generate, targetByName, TARGETS } from './targets';

/**
 * RSS growth allowed over the run's second half (the first half lets caches, pools and arenas fill). Measured
 * on this 2-core machine, four 100k runs: RSS grew 50.7, 32.6, 14.4 and 53.3 MiB over the second half (under
 * 0.6 KiB per input), drifting up without a clear trend per run, while the V8 heap in use went 52 -> 41,
 * 39 -> 44 and 57 -> 84 MiB between single samples (garbage not yet collected moves it by tens of MiB, so it is
 * reported, not bounded). 96 MiB is ~1.8x the largest drift measured; a leak of 2 KiB per input (100 MiB over the
 * half) crosses it.
 */
const DEFAULT_RSS_BOUND_MIB = 96;

function parseArgs(argv: string[]): FuzzOptions & { replay?: string } {
  const o: FuzzOptions & { replay?: string } = {
    inputs: 100_000,
    seed: randomInt(0, 2 ** 31 - 1),
    targets: [],
    concurrency: 32,
    hangMs: 20_000,
    rssBoundBytes: DEFAULT_RSS_BOUND_MIB * 1048576,
    corpusDir: CORPUS_DIR,
    replayCorpus: true,
    writeCorpus: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = () => {
      const v = Number(value());
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${a} takes a non-negative integer`);
      return v;
    };
    if (a === '--inputs') o.inputs = int();
    else if (a === '--seed') o.seed = int();
    else if (a === '--target') o.targets.push(value());
    else if (a === '--concurrency') o.concurrency = Math.max(1, int());
    else if (a === '--hang-ms') o.hangMs = int();
    else if (a === '--rss-bound-mib') o.rssBoundBytes = int() * 1048576;
    else if (a === '--no-corpus-write') o.writeCorpus = false;
    else if (a === '--no-corpus') o.replayCorpus = false;
    else if (a === '--replay') o.replay = value();
    else throw new Error(`unknown option ${a}; see the comment at the top of fuzz/run.ts`);
  }
  for (const t of o.targets) if (!targetByName(t)) throw new Error(`no target ${t}; targets: ${TARGETS.map((x) => x.name).join(', ')}`);
  return o;
}

export function printSummary(s: FuzzSummary, print: (line: string) => void): void {
  print(`--- fuzz summary: seed ${s.seed}, ${s.inputs} inputs (${s.networkInputs} over the network) + ${s.corpusReplayed} corpus, ${s.seconds.toFixed(1)} s`);
  for (const [name, t] of Object.entries(s.perTarget)) {
    const codes = Object.entries(t.codes).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
    print(`  ${name.padEnd(19)} ${String(t.inputs).padStart(6)}  ${codes}`);
  }
  print(`  server requests by code (/metrics): ${Object.entries(s.serverCodes).map(([c, n]) => `${c} ${n}`).join(', ')}`);
  print(`  server RSS: ${mib(s.rss.warm)} MiB after warm-up, ${mib(s.rss.mid)} MiB at half, ${mib(s.rss.end)} MiB at the end (max ${mib(s.rss.max)} MiB)`);
  print(`  server V8 heap in use (lowest sample): ${mib(s.heap.mid)} MiB after half, ${mib(s.heap.end)} MiB in the last tenth; external memory ${mib(s.heap.externalMid)} -> ${mib(s.heap.externalEnd)} MiB`);
  for (const [id, n] of Object.entries(s.known)) print(`  known finding ${id} (fuzz/known-findings.ts): ${n} inputs`);
  if (s.corpusAdded.length) print(`  corpus: ${s.corpusAdded.length} new entries`);
  for (const v of s.violations.slice(0, 20)) {
    print(`VIOLATION [${v.target}] ${v.source}${v.seed >= 0 ? ` (replay: npm run fuzz -- --replay ${v.target}:${v.seed})` : ''}`);
    for (const p of v.problems) print(`  - ${p.slice(0, 2000)}`);
    if (v.outcome) print(`  outcome: ${v.outcome.code} ${v.outcome.message.slice(0, 300)}`);
    if (v.case) print(`  input: ${JSON.stringify(v.case).slice(0, 2000)}`);
  }
  if (s.violations.length > 20) print(`  ... and ${s.violations.length - 20} more violations`);
  print(s.violations.length ? `--- fuzz FAILED: ${s.violations.length} violations (seed ${s.seed})` : '--- fuzz passed: zero crashes, zero hangs, no UNKNOWN/INTERNAL, no HTTP 500');
}

async function replay(spec: string, o: FuzzOptions): Promise<number> {
  const [name, seedText] = spec.split(':');
  const target = targetByName(name ?? '');
  if (!target || !/^\d+$/.test(seedText ?? '')) throw new Error('--replay takes TARGET:SEED');
  const c = generate(target, Number(seedText));
  console.log(`input: ${JSON.stringify(c)}`);
  const server = await startServer();
  const grpc = new GrpcExecutor(server.grpcAddress, o.hangMs);
  const httpx = new HttpExecutor(server.httpPort, o.hangMs, 1);
  const config = new ConfigExecutor();
  try {
    const outcome = c.kind === 'config' ? await config.run(c) : c.kind === 'http' ? await httpx.run(c) : await grpc.run(c);
    console.log(`outcome: ${JSON.stringify(outcome)}`);
    if (!server.alive()) console.log(`the server exited: ${server.exitDescription()}`);
    for (const l of server.errorLines) console.log(`error-level log line: ${l}`);
    return outcome.violations.length || !server.alive() || server.errorLines.length ? 1 : 0;
  } finally {
    grpc.close();
    httpx.close();
    config.close();
    await server.stop();
  }
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.replay) return replay(o.replay, o);
  console.log(`--- fuzz: seed ${o.seed} (replay the run with --seed ${o.seed}), ${o.inputs} inputs, concurrency ${o.concurrency}, targets ${o.targets.join(', ') || 'all'}`);
  const summary = await runFuzz({ ...o, log: (l) => console.log(l) });
  printSummary(summary, (l) => console.log(l));
  return summary.violations.length ? 1 : 0;
}

if (require.main === module) {
  // Exit through process.exit so the 'exit' hooks stop the server and remove the temp folder.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`fuzz: ${err instanceof Error ? err.stack : String(err)}`);
      process.exit(2);
    },
  );
}
