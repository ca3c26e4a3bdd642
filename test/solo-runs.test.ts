/**
 * Solo runs: a version whose runs take milliseconds gets a second session with every core of the process, used
 * only by an execution that starts while no worker has anything else to do, and by the decode steps of a
 * lone batch of sequences. Its answers are the ordinary session's byte for byte, and a stream that moves
 * between the two sessions mid-way generates the same tokens; under load (another run in flight, or requests waiting) nothing runs solo; a
 * reload or unload drops the session, a replacement worker gets it back; a version whose config fixes its
 * threads, or a server started with --solo-threads 1, never runs solo. The rule itself is tested on its own.
 * Real workers, real models, a real server.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { InferTensor } from '../src/core/tensor';
import { ExecutionPool } from '../src/runtime/execution-pool';
import type { SessionSettings } from '../src/runtime/messages';
import { SOLO_KEEP_RATIO, SOLO_MIN_RUN_US, SOLO_SAMPLES, SoloRuns } from '../src/scheduling/solo-runs';
import { addModel, BUNDLED_MODELS_DIR, f32Tensor, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';
import { addGenerationModel, generate, tokensOf } from './generation-helpers';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { SLOW_MODEL_UNPINNED_CONFIG } from './fixtures/configs';
import { modelConfigSchema } from '../src/repository/model-config';
import { SOLO_MAX_MODEL_BYTES, soloIneligibility } from '../src/repository/schedule-policy';

describe('solo rule', () => {
  test('a solo session is asked for once, when the typical run reaches the threshold after enough lone runs, and used only when ready and nothing waits', () => {
    const solo = new SoloRuns(undefined, 4);
    assert.equal(solo.state, 'not_yet');
    assert.equal(solo.shouldLoad(SOLO_MIN_RUN_US), false, 'no lone runs to measure it against yet');
    for (let i = 0; i < SOLO_SAMPLES / 2; i++) solo.observeLone(2000, 1);
    assert.equal(solo.shouldLoad(SOLO_MIN_RUN_US - 1), false);
    assert.equal(solo.wants(SOLO_MIN_RUN_US * 2, false), false, 'no session yet');
    assert.equal(solo.shouldLoad(SOLO_MIN_RUN_US), true);
    assert.equal(solo.shouldLoad(SOLO_MIN_RUN_US * 2), false, 'asked for once');
    assert.equal(solo.state, 'loading');
    solo.loaded();
    assert.match(solo.reason, /no other work running or waiting uses a session with 4 threads/);
    assert.equal(solo.wants(SOLO_MIN_RUN_US, false), true);
    assert.equal(solo.wants(SOLO_MIN_RUN_US, true), false, 'others waiting');
    assert.equal(solo.wants(SOLO_MIN_RUN_US - 1, false), false, 'its runs got shorter');
  });

  test('a cheap model whose first runs were slow gets no solo session: its lone runs decide, not an average that starts at the first', () => {
    const solo = new SoloRuns(undefined, 2);
    solo.observeLone(6000, 1); // a new session's first run
    for (let i = 0; i < SOLO_SAMPLES; i++) solo.observeLone(20, 1);
    assert.equal(solo.shouldLoad(3 * SOLO_MIN_RUN_US), false, 'a typical run still lifted by the first');
    assert.equal(solo.state, 'not_yet');
  });

  test(`a solo session is kept when its first ${SOLO_SAMPLES} runs take at most ${SOLO_KEEP_RATIO} of the lone ordinary runs' median per row, else dropped`, () => {
    const ready = (lone: number[]) => {
      const solo = new SoloRuns(undefined, 2);
      for (const us of lone) solo.observeLone(us, 1);
      assert.equal(solo.shouldLoad(SOLO_MIN_RUN_US), true);
      solo.loaded();
      return solo;
    };
    const faster = ready(Array.from({ length: SOLO_SAMPLES }, (_, i) => 3000 + i));
    for (let i = 0; i < SOLO_SAMPLES - 1; i++) assert.equal(faster.observeSolo(i % 4 === 0 ? 9000 : 1700), undefined);
    assert.equal(faster.observeSolo(1700), 'kept', 'medians: 1700 against 3008');
    assert.match(faster.reason, /measured 1700 µs per row solo against 3008 on one worker's session/);
    assert.equal(faster.observeSolo(50_000), undefined, 'judged once');
    assert.deepEqual([faster.state, faster.runs], ['ready', SOLO_SAMPLES + 1]);

    const slower = ready(Array.from({ length: SOLO_SAMPLES / 2 }, () => 1000));
    let verdict;
    for (let i = 0; i < SOLO_SAMPLES; i++) verdict = slower.observeSolo(950);
    assert.equal(verdict, 'dropped', `950 is more than ${SOLO_KEEP_RATIO} x 1000`);
    assert.equal(slower.state, 'off');
    assert.match(slower.reason, /^its solo session was not 20% faster, so it was dropped: measured 950 µs per row solo against 1000/);
    assert.equal(slower.wants(SOLO_MIN_RUN_US, false), false);
  });

  test('a version is ineligible when its config fixes its threads, it runs on another provider, or its file is large', () => {
    const config = (session: object) => modelConfigSchema.parse({ session });
    assert.equal(soloIneligibility(config({}), SOLO_MAX_MODEL_BYTES), undefined);
    assert.equal(soloIneligibility(config({ intra_op_threads: 2 }), 1), 'config.yaml sets session.intra_op_threads: 2');
    assert.equal(soloIneligibility(config({ execution_providers: ['cuda', 'cpu'] }), 1), 'it uses the cuda, cpu execution providers');
    assert.equal(soloIneligibility(config({}), SOLO_MAX_MODEL_BYTES + 1), `its model file is 256 MiB, more than the 256 MiB a second session may hold`);
  });

  test('an ineligible version, or one whose session could not be made, is off and says why', () => {
    const off = new SoloRuns('config.yaml sets session.intra_op_threads: 2', 4);
    assert.deepEqual([off.state, off.reason, off.shouldLoad(1e9)], ['off', 'config.yaml sets session.intra_op_threads: 2', false]);
    const failed = new SoloRuns(undefined, 4);
    for (let i = 0; i < SOLO_SAMPLES; i++) failed.observeLone(2000, 1);
    failed.shouldLoad(1e9);
    failed.failed('out of memory');
    assert.deepEqual([failed.state, failed.reason, failed.wants(1e9, false)], ['off', 'its solo session could not be made: out of memory', false]);
  });
});

describe('solo sessions in the pool', () => {
  const settings: SessionSettings = { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', executionProviders: ['cpu'] };
  const CONVNET = path.join(BUNDLED_MODELS_DIR, 'convnet', '1', 'model.onnx');
  const image = (seed: number): InferTensor[] => [{ name: 'image', dtype: 'FP32', shape: [2, 3, 32, 32], data: new Uint8Array(seededFloats(2 * 3 * 32 * 32, seed).buffer) }];
  const bytes = (r: { outputs: InferTensor[] }) => Buffer.from(r.outputs[0]!.data);
  let pool: ExecutionPool;

  before(async () => {
    pool = new ExecutionPool({ workers: 2, soloThreads: 2 });
    await pool.load('convnet', CONVNET, settings);
  });
  after(async () => {
    await pool?.close();
  });

  test('only a session with fewer threads than a solo run can have one', async () => {
    assert.equal(pool.soloIneligibility('convnet'), undefined);
    await pool.load('wide', CONVNET, { ...settings, intraOpThreads: 2 });
    assert.match(pool.soloIneligibility('wide') ?? '', /already use 2 intra-op threads, no fewer than a solo run's 2/);
    await assert.rejects(pool.loadSolo('wide', []), /already use 2 intra-op threads/);
    await pool.unload('wide');
    const off = new ExecutionPool({ workers: 1 });
    try {
      await off.load('convnet', CONVNET, settings);
      assert.equal(off.soloIneligibility('convnet'), 'solo runs are off (--solo-threads 1)');
    } finally {
      await off.close();
    }
  });

  test('a solo run answers byte for byte as an ordinary one, and runs solo only while no worker is busy', async () => {
    const ordinary = await pool.run('convnet', image(1), []);
    assert.equal(ordinary.solo, undefined);
    assert.equal((await pool.run('convnet', image(1), [], { solo: true })).solo, undefined, 'no solo session yet');
    await pool.loadSolo('convnet', []);
    const solo = await pool.run('convnet', image(1), [], { solo: true });
    assert.equal(solo.solo, true);
    assert.deepEqual(bytes(solo), bytes(ordinary));
    // Two at once: the first takes a worker synchronously, so the second finds the pool busy.
    const [first, second] = await Promise.all([pool.run('convnet', image(2), [], { solo: true }), pool.run('convnet', image(3), [], { solo: true })]);
    assert.deepEqual([first.solo, second.solo], [true, undefined]);
    assert.deepEqual([first.alone, second.alone], [true, undefined], 'the second started with a worker busy');
    assert.deepEqual(bytes(second), bytes(await pool.run('convnet', image(3), [])));
  });

  test('a reload or an unload drops the solo session; a replacement worker gets it back', async () => {
    await pool.loadSolo('convnet', []);
    await pool.load('convnet', CONVNET, settings); // a reload: what the solo session was made from is gone
    assert.equal((await pool.run('convnet', image(4), [], { solo: true })).solo, undefined);
    await pool.loadSolo('convnet', []);
    assert.equal((await pool.run('convnet', image(4), [], { solo: true })).solo, true);

    // The solo worker dies in a run: its replacement loads the ordinary and the solo session again.
    const replaced = once(pool, 'worker-restarted');
    await pool.exitOnNextRunForTest('convnet');
    await assert.rejects(pool.run('convnet', image(5), [], { solo: true }), { code: 'UNAVAILABLE' });
    const [index] = await replaced;
    assert.equal(index, 0);
    const again = await pool.run('convnet', image(5), [], { solo: true });
    assert.equal(again.solo, true, 'the replacement has the solo session');
    pool.unloadSolo('convnet'); // as when measured not clearly faster
    assert.equal((await pool.run('convnet', image(5), [], { solo: true })).solo, undefined, 'dropped on its own');
    await pool.loadSolo('convnet', []);
    await pool.unload('convnet');
    await pool.load('convnet', CONVNET, settings);
    assert.equal((await pool.run('convnet', image(5), [], { solo: true })).solo, undefined, 'unloaded with the version');
    assert.deepEqual(bytes(again), bytes(await pool.run('convnet', image(5), [])));
  });
});

describe('solo runs in the server', () => {
  let repo: ReturnType<typeof tempDir>;
  let solo: TestServer;
  let reference: TestServer;
  // The slow fixture with no thread setting of its own: 8 rows take milliseconds on any CPU.
  const request = (seed: number) => ({ model: 'slow', inputs: [f32Tensor('x', [8, 256], seededFloats(8 * 256, seed))] });
  const strip = (r: any) => ({ ...r, request_id: '' });
  const soloInfo = async (ts: TestServer, model = 'slow') => (await unary(ts.client, 'GetModel', { model })).versions[0].placement.solo;
  const soloExecutions = async (ts: TestServer) => {
    const text = await (await fetch(`http://127.0.0.1:${ts.server.httpPort}/metrics`)).text();
    return Number(/^tensorgate_solo_executions_total\{model="slow",version="1"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  };

  before(async () => {
    repo = tempDir('solo');
    addModel(repo.dir, 'slow', '', { 1: writeSlowModel });
    addModel(repo.dir, 'slow-threads', SLOW_MODEL_UNPINNED_CONFIG, { 1: writeSlowModel });
    addGenerationModel(repo.dir, 'gqa');
    const common = { modelRepository: repo.dir, cacheMaxBytes: 0, inlineMaxRunUs: 0, workers: 2, intraOpThreads: 1 };
    [solo, reference] = await Promise.all([startTestServer({ ...common, soloThreads: 2 }), startTestServer({ ...common, soloThreads: 1 })]);
  });
  after(async () => {
    await Promise.all([solo?.close(), reference?.close()]);
    repo.cleanup();
  });

  test('a slow version gets a solo session after its first runs, says so, and answers as a server without solo runs', async () => {
    assert.equal((await soloInfo(solo)).state, 'not_yet');
    const ready = once(solo.server.scheduler, 'solo');
    // One request at a time until the solo session is made (the first run already shows milliseconds).
    let settled = false;
    void ready.then(() => (settled = true));
    for (let i = 0; i < 64 && !settled; i++) await unary(solo.client, 'Predict', request(i));
    assert.ok(settled, 'the solo session was made within 64 requests');
    const [event] = await ready;
    assert.deepEqual({ key: event.key, state: event.state }, { key: 'slow@1', state: 'ready' });

    const before = await soloExecutions(solo);
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(strip(await unary(solo.client, 'Predict', request(100 + i))));
    for (let i = 0; i < 6; i++) assert.deepEqual(answers[i], strip(await unary(reference.client, 'Predict', request(100 + i))));
    assert.equal(await soloExecutions(solo), before + 6, 'one at a time, every execution ran solo');
    const info = await soloInfo(solo);
    assert.equal(info.state, 'ready');
    assert.ok(Number(info.runs) >= 6);
    assert.match(info.reason, /uses a session with 2 threads/);
  });

  test('with another request in flight an execution is not solo', async () => {
    assert.equal((await soloInfo(solo)).state, 'ready', 'since the test above');
    const key = 'slow@1';
    const tensor = (seed: number): InferTensor => ({ name: 'x', dtype: 'FP32', shape: [8, 256], data: new Uint8Array(seededFloats(8 * 256, seed).buffer) });
    const before = await soloExecutions(solo);
    // Submitted in one turn: the first starts alone on the idle pool; the second finds a worker busy.
    const both = await Promise.all([200, 201].map((seed) => solo.server.scheduler.submit({ key, inputs: [tensor(seed)], outputs: [], deadline: undefined, signal: undefined })));
    assert.equal(await soloExecutions(solo), before + 1);
    for (const [i, r] of both.entries()) {
      const want = await unary(reference.client, 'Predict', request(200 + i));
      assert.deepEqual(Buffer.from(r.outputs[0]!.data), Buffer.from(want.outputs[0].data));
    }
  });

  test('a version whose config fixes its threads, and a server with --solo-threads 1, never run solo', async () => {
    for (let i = 0; i < 4; i++) await unary(solo.client, 'Predict', { ...request(i), model: 'slow-threads' });
    const fixed = await soloInfo(solo, 'slow-threads');
    assert.deepEqual([fixed.state, fixed.reason, Number(fixed.runs)], ['off', 'config.yaml sets session.intra_op_threads: 1', 0]);
    const off = await soloInfo(reference);
    assert.deepEqual([off.state, off.reason, Number(off.runs)], ['off', 'solo runs are off (--solo-threads 1)', 0]);
    assert.equal(await soloExecutions(reference), 0);
  });

  test('a lone stream decodes on the solo session, and streams that move between sessions generate the same tokens', async () => {
    const request = (prompt: string) => ({ model: 'gqa', prompt, max_tokens: 40, temperature: 0, ignore_eos: true });
    // A lone stream on an ordinary session first: the baseline a solo session is measured against.
    assert.deepEqual(tokensOf(await generate(solo, request('Hello'))), tokensOf(await generate(reference, request('Hello'))));
    const ready = once(solo.server.scheduler, 'solo');
    // Asked for as a slow model's lone steps would ask (what a step takes depends on the machine; the rule is
    // tested above), with a baseline no solo step misses, so the session is kept for the rest of the test.
    for (let i = 0; i < SOLO_SAMPLES; i++) solo.server.scheduler.solo.of('gqa@1').observeLone(1e6, 1);
    solo.server.scheduler.solo.observe('gqa@1', 1e6);
    const [event] = await ready;
    assert.deepEqual([event.key, event.state], ['gqa@1', 'ready']);

    // Two at once: the first may start alone on the solo worker, and goes back to its ordinary session when the second arrives on the other worker.
    const prompts = ['The quick brown fox', 'Hi, tensorgate'];
    const together = await Promise.all(prompts.map((p) => generate(solo, request(p))));
    for (const [i, p] of prompts.entries()) assert.deepEqual(tokensOf(together[i]!), tokensOf(await generate(reference, request(p))), p);

    // One stream: after its first step the pool tells the solo worker it is alone.
    assert.deepEqual(tokensOf(await generate(solo, request('Hello'))), tokensOf(await generate(reference, request('Hello'))));
    const runs = Number((await soloInfo(solo, 'gqa')).runs);
    assert.ok(runs > 0, 'decode steps ran solo');
    assert.match(await (await fetch(`http://127.0.0.1:${solo.server.httpPort}/metrics`)).text(), new RegExp(`^tensorgate_solo_executions_total\\{model="gqa",version="1"\\} ${runs}$`, 'm'));
  });
});
