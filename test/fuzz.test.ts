/**
 * A short fuzz run inside `npm test`, so a regression the fuzzer would catch shows up for a developer before
 * CI's long run (npm run fuzz): the committed corpus (fuzz/corpus/) replayed, then 2,000 generated inputs from
 * a fixed seed, against a real server child process. The corpus is only read here, never written.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CORPUS_DIR, runFuzz } from '../fuzz/engine';
import { printSummary } from '../fuzz/run';
import { TARGETS } from '../fuzz/targets';

test('the corpus and 2,000 generated inputs: no crash, no hang, no UNKNOWN/INTERNAL, no HTTP 500', async () => {
  const summary = await runFuzz({
    inputs: 2000,
    seed: 20261201,
    targets: [],
    concurrency: 16,
    hangMs: 20_000,
    // A short run says nothing about leaks (the engine checks RSS from 10k inputs): the CI run does.
    rssBoundBytes: Number.MAX_SAFE_INTEGER,
    corpusDir: CORPUS_DIR,
    replayCorpus: true,
    writeCorpus: false,
  });
  const lines: string[] = [];
  printSummary(summary, (l) => lines.push(l));
  assert.deepEqual(summary.violations, [], lines.join('\n'));
  assert.equal(summary.inputs, 2000);
  assert.ok(summary.corpusReplayed > 0, 'the committed corpus is replayed');
  for (const t of TARGETS) assert.ok((summary.perTarget[t.name]?.inputs ?? 0) > 0, `target ${t.name} got inputs`);
});
