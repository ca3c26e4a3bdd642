/**
 * Generate end to end over gRPC with a real decoder: the gqa-decoder fixture (grouped-query attention,
 * fp16 KV cache, no position_ids, a merged decoder with use_cache_branch, a byte-level tokenizer).
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { cli } from './cli-process';
import { addModel, copyBundledModel, expectStatus, slowRequest, startRun, startTestServer, tempDir, type TestServer } from './common';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { FIXTURE, generate, generationRepository, textOf, tokensOf, type GenerateMessage } from './generation-helpers';

const HELLO = [72, 101, 108, 108, 111];
const EOS = 257;

/** Greedy decoding without any cache: the whole sequence is run again for every token (ONNX Runtime directly). */
async function greedyWithoutCache(prompt: number[], steps: number): Promise<number[]> {
  const session = await ort.InferenceSession.create(path.join(FIXTURE, '1/model.onnx'));
  const tokens = [...prompt];
  const out: number[] = [];
  const emptyPast = new ort.Tensor('float16', new Uint16Array(0), [1, 2, 0, 8]);
  for (let i = 0; i < steps; i++) {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(tokens.length).fill(1n), [1, tokens.length]),
      use_cache_branch: new ort.Tensor('bool', [false], [1]),
    };
    for (let l = 0; l < 2; l++) for (const k of ['key', 'value']) feeds[`past_key_values.${l}.${k}`] = emptyPast;
    const { logits } = await session.run(feeds);
    const data = logits!.data as Float32Array;
    const vocab = logits!.dims[2]!;
    const last = data.subarray((tokens.length - 1) * vocab, tokens.length * vocab);
    const next = last.indexOf(Math.max(...last));
    tokens.push(next);
    out.push(next);
  }
  await session.release();
  return out;
}

let ts: TestServer;
let repo: { dir: string; cleanup: () => void };

before(async () => {
  repo = generationRepository();
  copyBundledModel(repo.dir, 'mlp');
  // One worker: every concurrent stream shares one batch (the case continuous batching must get right).
  ts = await startTestServer({ modelRepository: repo.dir, workers: 1 });
});

after(async () => {
  await ts.close();
  repo.cleanup();
});

test('greedy decoding with the KV cache equals running the whole sequence without it', async () => {
  const messages = await generate(ts, { model: 'gqa', prompt_token_ids: HELLO, max_tokens: 30, temperature: 0 });
  assert.deepEqual(tokensOf(messages), await greedyWithoutCache(HELLO, 30));
  const last = messages.at(-1)!;
  assert.equal(last.finish_reason, 'LENGTH');
  assert.equal(last.usage?.prompt_tokens, 5);
  assert.equal(last.usage?.completion_tokens, 30);
  assert.ok(last.usage!.time_to_first_token_s > 0 && last.usage!.total_time_s >= last.usage!.time_to_first_token_s);
  assert.equal(messages[0]!.version, '1');
  // finish_reason and usage on the last message only
  assert.ok(messages.slice(0, -1).every((m) => m.finish_reason === 'FINISH_REASON_UNSPECIFIED' && m.usage === null));
});

test('a text prompt is tokenised by the model tokenizer; the stream text is the decoded tokens', async () => {
  const byText = await generate(ts, { model: 'gqa', prompt: 'Hello', max_tokens: 12, temperature: 0 });
  const byIds = await generate(ts, { model: 'gqa', prompt_token_ids: HELLO, max_tokens: 12, temperature: 0 });
  assert.deepEqual(tokensOf(byText), tokensOf(byIds));
  assert.equal(textOf(byText), Buffer.from(tokensOf(byText).filter((t) => t < 256)).toString('utf8'));
});

test('streams that join a running batch at different times get the tokens they get alone', async () => {
  const prompts = ['Hello', 'Hi, tensorgate ✓ 日本', 'The quick brown fox', 'a'];
  const solo: number[][] = [];
  for (const prompt of prompts) solo.push(tokensOf(await generate(ts, { model: 'gqa', prompt, max_tokens: 40, temperature: 0, ignore_eos: true })));
  // The first stream starts alone; each next one joins once the previous has streamed a few tokens.
  const results: Promise<GenerateMessage[]>[] = [];
  const joined = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const messages: GenerateMessage[] = [];
      const call = ts.client.Generate({ model: 'gqa', prompt: prompts[i], max_tokens: 40, temperature: 0, ignore_eos: true });
      results[i] = new Promise((done, fail) => {
        call.on('data', (m: GenerateMessage) => {
          messages.push(m);
          if (messages.length === 3 + i) resolve();
        });
        call.on('error', (e: Error) => {
          fail(e);
          reject(e);
        });
        call.on('end', () => done(messages));
      });
    });
  for (let i = 0; i < prompts.length; i++) await joined(i);
  const batched = await Promise.all(results);
  batched.forEach((messages, i) => assert.deepEqual(tokensOf(messages), solo[i], `stream ${i} (${prompts[i]})`));
});

test('seeded sampling reproduces; the seed is returned, and a picked seed reproduces too', async () => {
  const request = { model: 'gqa', prompt: 'Hello', max_tokens: 25, temperature: 1.2, top_k: 50, top_p: 0.95 };
  const a = await generate(ts, { ...request, seed: 1234 });
  const b = await generate(ts, { ...request, seed: 1234 });
  const c = await generate(ts, { ...request, seed: 1235 });
  assert.deepEqual(tokensOf(a), tokensOf(b));
  assert.notDeepEqual(tokensOf(a), tokensOf(c));
  assert.equal(Number(a[0]!.seed), 1234);
  // Without a seed the server picks one (below 2^53, so a JavaScript client reads it exactly) and it reproduces the run.
  const picked = await generate(ts, request);
  const seed = Number(picked[0]!.seed);
  assert.ok(Number.isSafeInteger(seed) && seed > 0);
  assert.deepEqual(tokensOf(await generate(ts, { ...request, seed })), tokensOf(picked));
});

test('the end-of-sequence token ends the stream (EOS); ignore_eos goes on to max_tokens', async () => {
  const eos = await generate(ts, { model: 'gqa', prompt_token_ids: HELLO, max_tokens: 64, temperature: 0 });
  assert.equal(eos.at(-1)!.finish_reason, 'EOS');
  assert.equal(tokensOf(eos).at(-1), EOS);
  assert.ok(tokensOf(eos).length < 64);
  const ignored = await generate(ts, { model: 'gqa', prompt_token_ids: HELLO, max_tokens: 64, temperature: 0, ignore_eos: true });
  assert.equal(ignored.at(-1)!.finish_reason, 'LENGTH');
  assert.equal(tokensOf(ignored).length, 64);
  const stopToken = tokensOf(ignored)[3]!;
  const byStopId = await generate(ts, { model: 'gqa', prompt_token_ids: HELLO, max_tokens: 64, temperature: 0, stop_token_ids: [stopToken] });
  assert.equal(byStopId.at(-1)!.finish_reason, 'EOS');
  assert.deepEqual(tokensOf(byStopId), tokensOf(ignored).slice(0, 4));
});

test('a stop string ends the stream before it, even split across tokens, and is not returned', async () => {
  const full = await generate(ts, { model: 'gqa', prompt: 'Hi, tensorgate ✓ 日本', max_tokens: 40, temperature: 0, ignore_eos: true });
  const text = textOf(full);
  // a two-character stop string (two byte tokens at least) past the start, at its first occurrence
  let at: number | undefined;
  for (let i = 2; i < text.length - 1 && at === undefined; i++) {
    const pair = text.slice(i, i + 2);
    if (/^[\x21-\x7e]{2}$/.test(pair) && text.indexOf(pair) === i) at = i;
  }
  assert.ok(at !== undefined, `no stop candidate in ${JSON.stringify(text)}`);
  const stop = text.slice(at, at + 2);
  const stopped = await generate(ts, { model: 'gqa', prompt: 'Hi, tensorgate ✓ 日本', max_tokens: 40, temperature: 0, ignore_eos: true, stop: [stop] });
  assert.equal(stopped.at(-1)!.finish_reason, 'STOP');
  assert.equal(textOf(stopped), text.slice(0, text.indexOf(stop)));
});

test('chat messages are rendered by the model chat template', async () => {
  const messages = [{ role: 'user', content: 'Hello' }];
  const chat = await generate(ts, { model: 'gqa', messages, max_tokens: 8, temperature: 0 });
  assert.equal(chat.at(-1)!.usage!.prompt_tokens > 5, true);
  await expectStatus(generate(ts, { model: 'gqa', messages: [{ role: 'robot', content: 'x' }] }), grpc.status.INVALID_ARGUMENT, /messages\[0\]\.role/);
});

test('every bad parameter is refused with INVALID_ARGUMENT naming it and its range', async () => {
  const base = { model: 'gqa', prompt: 'Hello', max_tokens: 4 };
  const cases: [object, RegExp][] = [
    [{ top_k: -1 }, /top_k must be an integer >= 0/],
    [{ temperature: 150 }, /temperature must be in \[0, 100\]/],
    [{ top_p: 0 }, /top_p must be in \(0, 1\]/],
    [{ top_p: 1.5 }, /top_p must be in \(0, 1\]/],
    [{ min_p: 2 }, /min_p must be in \[0, 1\]/],
    [{ presence_penalty: 3 }, /presence_penalty must be in \[-2, 2\]/],
    [{ frequency_penalty: -2.5 }, /frequency_penalty must be in \[-2, 2\]/],
    [{ repetition_penalty: 11 }, /repetition_penalty must be in \(0, 10\]/],
    [{ max_tokens: 129 }, /max_tokens 129 is above this model's limit of 128/],
    [{ stop: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'] }, /at most 8/],
    [{ stop: ['x'.repeat(129)] }, /stop\[0\] is 129 bytes/],
    [{ stop_token_ids: [259] }, /stop_token_ids\[0\] is 259; token ids are integers in \[0, 258\]/],
    [{ prompt_token_ids: [1, 2] }, /give one of prompt, prompt_token_ids and messages, not prompt and prompt_token_ids/],
    [{ prompt: '' }, /nothing to continue/],
    [{ prompt: '', prompt_token_ids: [300] }, /prompt_token_ids\[0\] is 300/],
  ];
  for (const [patch, pattern] of cases) {
    await expectStatus(generate(ts, { ...base, ...patch }), grpc.status.INVALID_ARGUMENT, pattern);
  }
  await expectStatus(generate(ts, { ...base, model: 'nope' }), grpc.status.NOT_FOUND, /model 'nope' not found/);
  await expectStatus(generate(ts, { ...base, model: 'mlp' }), grpc.status.INVALID_ARGUMENT, /not a generation model/);
});

test('GetModel describes what Generate accepts for a generation model', async () => {
  const info = await new Promise<any>((resolve, reject) => ts.client.GetModel({ model: 'gqa' }, (err: Error | null, v: unknown) => (err ? reject(err) : resolve(v))));
  assert.deepEqual(
    { ...info.generation, eos_token_ids: info.generation.eos_token_ids.map(Number) },
    { context_tokens: 256, max_tokens: 128, default_max_tokens: 64, max_concurrent_sequences: 4, max_waiting_sequences: 256, eos_token_ids: [EOS], chat_template: true, default_temperature: 0, default_top_k: 0, default_top_p: 1 }, // do_sample: false -> greedy
  );
  const mlp = await new Promise<any>((resolve, reject) => ts.client.GetModel({ model: 'mlp' }, (err: Error | null, v: unknown) => (err ? reject(err) : resolve(v))));
  assert.equal(mlp.generation, null);
});

test('a model whose graph is not a decoder is UNAVAILABLE at load, naming what is missing', async () => {
  const bad = tempDir('generate-bad');
  try {
    copyBundledModel(bad.dir, 'mlp');
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(FIXTURE, f), path.join(bad.dir, 'mlp', f));
    fs.writeFileSync(path.join(bad.dir, 'mlp', 'config.yaml'), 'generation: {}\n');
    const other = await startTestServer({ modelRepository: bad.dir, workers: 1 });
    try {
      const info = await new Promise<{ versions: { state: string; reason: string }[] }>((resolve, reject) =>
        other.client.GetModel({ model: 'mlp' }, (err: Error | null, v: never) => (err ? reject(err) : resolve(v))),
      );
      assert.equal(info.versions[0]!.state, 'UNAVAILABLE');
      assert.match(info.versions[0]!.reason, /input 'input_ids' is missing/);
      assert.match(info.versions[0]!.reason, /no KV cache inputs/);
    } finally {
      await other.close();
    }
  } finally {
    bad.cleanup();
  }
});

/**
 * Runs `body` against a server with one inference worker (every stream shares its batch) over the fixture
 * with `config` (default GQA_CONFIG); `setup` may add models to the repository first.
 */
async function withOneWorker(config: string | undefined, body: (one: TestServer) => Promise<void>, setup?: (dir: string) => void): Promise<void> {
  const repo = generationRepository(config);
  setup?.(repo.dir);
  const one = await startTestServer({ modelRepository: repo.dir, workers: 1 });
  try {
    await body(one);
  } finally {
    await one.close();
    repo.cleanup();
  }
}

/** Resolves once the server reports no sequence of any model decoding or waiting. */
async function sequencesDrained(server: TestServer): Promise<void> {
  while (server.server.sequences.counts().some((c) => c.running > 0 || c.waiting > 0)) await new Promise((r) => setImmediate(r));
}

test('a cancelled stream, or one past its deadline, leaves the batch and frees its place for the next', async () => {
  await withOneWorker('generation:\n  max_concurrent_sequences: 1\n  max_waiting_sequences: 0\n  max_tokens: 250\n', async (one) => {
    const long = { model: 'gqa', prompt: 'Hello', max_tokens: 250, temperature: 0, ignore_eos: true };
    // The one place is taken: another stream is refused at once.
    const first = one.client.Generate(long);
    await new Promise((resolve) => first.once('data', resolve));
    await expectStatus(generate(one, long), grpc.status.RESOURCE_EXHAUSTED, /most sequences/);
    const ended = new Promise((resolve) => first.on('error', resolve));
    first.cancel();
    assert.equal(((await ended) as grpc.ServiceError).code, grpc.status.CANCELLED);
    await sequencesDrained(one);
    // The place is free again, and a stream whose deadline passes mid-generation frees it too.
    await expectStatus(generate(one, { ...long, max_tokens: 250 }, { deadline: Date.now() + 10 }), grpc.status.DEADLINE_EXCEEDED);
    await sequencesDrained(one);
    const after = await generate(one, { ...long, max_tokens: 5 });
    assert.equal(after.at(-1)!.finish_reason, 'LENGTH');
  });
});

test('tensorgate generate streams the text to stdout and ends with tokens/s and the seed on stderr', async () => {
  const expected = textOf(await generate(ts, { model: 'gqa', prompt: 'Hello', max_tokens: 20, temperature: 0, ignore_eos: true }));
  const run = await cli(['generate', '--address', ts.address, '--model', 'gqa', '--max-tokens', '20', '--temperature', '0', 'Hello']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, `${expected}\n`);
  assert.match(run.stderr, /\[length: 20 tokens in [0-9.]+ s, [0-9.]+ tokens\/s, first token after [0-9]+ ms, prompt 5 tokens, seed [0-9]+\]/);
  const bad = await cli(['generate', '--address', ts.address, '--model', 'gqa', '--top-k=-1', 'Hello']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /top_k must be an integer >= 0/);
});

test('generation metrics: time to first token, inter-token gaps, tokens in and out, finish reasons, sequences', async () => {
  await generate(ts, { model: 'gqa', prompt_token_ids: HELLO, max_tokens: 6, temperature: 0, ignore_eos: true });
  const text = await ts.server.metrics.registry.metrics();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN);
  assert.ok(value(/^tensorgate_generate_time_to_first_token_seconds_count\{model="gqa"\} (\d+)/m) >= 1, 'TTFT observed');
  assert.ok(value(/^tensorgate_generate_inter_token_seconds_count\{model="gqa"\} (\d+)/m) >= 5, 'gaps between tokens observed');
  assert.ok(value(/^tensorgate_generate_tokens_total\{model="gqa",direction="in"\} (\d+)/m) >= 5);
  assert.ok(value(/^tensorgate_generate_tokens_total\{model="gqa",direction="out"\} (\d+)/m) >= 6);
  assert.ok(value(/^tensorgate_generate_finished_total\{model="gqa",reason="length"\} (\d+)/m) >= 1);
  assert.equal(value(/^tensorgate_generate_sequences\{model="gqa",version="1",state="running"\} (\d+)/m), 0, 'no sequence left running');
  assert.match(text, /^tensorgate_requests_total\{protocol="grpc",method="Generate",model="gqa",version="1",code="OK"\} \d+/m);
});

test('a sequence waiting for a place fails DEADLINE_EXCEEDED at its deadline without generating; the running one is unharmed', async () => {
  await withOneWorker('generation:\n  max_concurrent_sequences: 1\n  max_waiting_sequences: 1\n  max_tokens: 120\n', async (one) => {
    // The one worker is held by a slow Predict run (~0.4 s), so the running sequence cannot finish and free
    // its place before the waiting one's deadline, however fast the machine.
    const busy = (await startRun(one, slowRequest(4096))).done;
    const running = generate(one, { model: 'gqa', prompt: 'Hello', max_tokens: 120, temperature: 0, ignore_eos: true });
    while (!one.server.sequences.counts().some((c) => c.running === 1)) await new Promise((r) => setImmediate(r));
    const waiting = generate(one, { model: 'gqa', prompt: 'Hi', max_tokens: 5 }, { deadline: Date.now() + 50 });
    await expectStatus(waiting, grpc.status.DEADLINE_EXCEEDED);
    await busy;
    assert.equal((await running).at(-1)!.finish_reason, 'LENGTH');
  }, (dir) => addModel(dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel }));
});

test('a worker that dies mid-generation fails its sequences UNAVAILABLE; the replacement serves the next ones', async () => {
  await withOneWorker(undefined, async (one) => {
    const call = one.client.Generate({ model: 'gqa', prompt: 'Hello', max_tokens: 120, temperature: 0, ignore_eos: true });
    await new Promise((resolve, reject) => call.once('data', resolve).once('error', reject));
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    await one.server.pool.exitOnNextRunForTest('gqa@1');
    const err = await failed;
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.match(err.details, /worker 0 exited while generating/);
    const next = await generate(one, { model: 'gqa', prompt_token_ids: HELLO, max_tokens: 30, temperature: 0 });
    assert.deepEqual(tokensOf(next), await greedyWithoutCache(HELLO, 30));
  });
});

test('a sequence waiting when a worker dies takes the freed place on its replacement', async () => {
  await withOneWorker('generation:\n  max_concurrent_sequences: 1\n  max_waiting_sequences: 1\n  max_tokens: 120\n', async (one) => {
    const call = one.client.Generate({ model: 'gqa', prompt: 'Hello', max_tokens: 120, temperature: 0, ignore_eos: true });
    await new Promise((resolve, reject) => call.once('data', resolve).once('error', reject));
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    // (a deadline, so that a sequence lost with the dead worker fails the test instead of hanging it)
    const waiting = generate(one, { model: 'gqa', prompt_token_ids: HELLO, max_tokens: 30, temperature: 0 }, { deadline: Date.now() + 30_000 });
    while (!one.server.sequences.counts().some((c) => c.waiting === 1)) await new Promise((r) => setImmediate(r));
    await one.server.pool.exitOnNextRunForTest('gqa@1');
    assert.equal((await failed).code, grpc.status.UNAVAILABLE);
    assert.deepEqual(tokensOf(await waiting), await greedyWithoutCache(HELLO, 30));
  });
});

test('shutting down while sequences are decoding stops the workers cleanly (no abort inside a run)', async () => {
  await withOneWorker('generation:\n  max_concurrent_sequences: 4\n  max_tokens: 250\n', async (one) => {
    const calls = [0, 1, 2].map(() => one.client.Generate({ model: 'gqa', prompt: 'Hello', max_tokens: 250, temperature: 0, ignore_eos: true }));
    const ended = calls.map((c) => new Promise<void>((resolve) => c.on('error', () => resolve()).on('end', () => resolve())));
    await Promise.all(calls.map((c) => new Promise((resolve) => c.once('data', resolve))));
    // No grace: the pool closes while the worker is stepping; terminating it inside a run would abort this process.
    await one.server.shutdown(0);
    await Promise.all(ended);
  });
});
