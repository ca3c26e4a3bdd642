/**
 * The OpenAI-compatible HTTP API, driven by the official `openai` client (and raw fetch where the client
 * hides what is on the wire): completions and chat, plain and streamed, usage, errors in the API's shape,
 * and a client that goes away mid-stream freeing its place.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { addModel, copyBundledModel, slowRequest, startRun, startTestServer, type TestServer } from './common';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { generate, generationRepository, tokensOf } from './generation-helpers';

let ts: TestServer;
let repo: { dir: string; cleanup: () => void };
let client: OpenAI;
let base: string;

before(async () => {
  repo = generationRepository('generation:\n  max_concurrent_sequences: 2\n  max_waiting_sequences: 0\n  max_tokens: 128\n');
  copyBundledModel(repo.dir, 'mlp');
  addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
  ts = await startTestServer({ modelRepository: repo.dir, workers: 1 });
  base = `http://127.0.0.1:${ts.server.httpPort}/v1`;
  client = new OpenAI({ baseURL: base, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await ts.close();
  repo.cleanup();
});

test('GET /v1/models lists the generation models only', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['gqa']);
  assert.equal(models.data[0]!.object, 'model');
});

test('a completion equals what Generate streams for the same request', async () => {
  const grpc = await generate(ts, { model: 'gqa', prompt: 'Hello', max_tokens: 16, temperature: 0, ignore_eos: true });
  const text = grpc.map((m) => m.text).join('');
  const completion = await client.completions.create({ model: 'gqa', prompt: 'Hello', max_tokens: 16, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.choices[0]!.text, text);
  assert.equal(completion.choices[0]!.finish_reason, 'length');
  assert.deepEqual(completion.usage, { prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 });
  // the seed used comes back as a number and repeats the run
  const seeded = await client.completions.create({ model: 'gqa', prompt: 'Hello', max_tokens: 8, temperature: 1 });
  const seed = (seeded as unknown as { seed: number }).seed;
  assert.equal(typeof seed, 'number');
  const again = await client.completions.create({ model: 'gqa', prompt: 'Hello', max_tokens: 8, temperature: 1, seed });
  assert.equal(again.choices[0]!.text, seeded.choices[0]!.text);
  assert.equal(tokensOf(grpc).length, 16);
});

test('a streamed completion sends the same text as events, then usage when asked, then [DONE]', async () => {
  const whole = await client.completions.create({ model: 'gqa', prompt: 'Hello', max_tokens: 20, temperature: 0 });
  const stream = await client.completions.create({ model: 'gqa', prompt: 'Hello', max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  let events = 0;
  for await (const chunk of stream) {
    events++;
    if (chunk.choices[0]) {
      text += chunk.choices[0].text;
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, whole.choices[0]!.text);
  assert.equal(finish, whole.choices[0]!.finish_reason);
  assert.deepEqual(usage, whole.usage);
  assert.ok(events > 2, `${events} events`);
  // On the wire: server-sent events ending in data: [DONE]
  const raw = await fetch(`${base}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gqa', prompt: 'Hi', max_tokens: 3, stream: true }) });
  assert.match(raw.headers.get('content-type') ?? '', /^text\/event-stream/);
  const body = await raw.text();
  assert.match(body, /^data: \{/);
  assert.ok(body.endsWith('data: [DONE]\n\n'), body.slice(-40));
});

test('chat completions render the chat template, plain and streamed, with the same answer', async () => {
  const messages: OpenAI.ChatCompletionMessageParam[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hello' },
  ];
  const grpc = await generate(ts, { model: 'gqa', messages, max_tokens: 12, temperature: 0 });
  const chat = await client.chat.completions.create({ model: 'gqa', messages, max_tokens: 12, temperature: 0 });
  assert.equal(chat.object, 'chat.completion');
  assert.equal(chat.choices[0]!.message.role, 'assistant');
  assert.equal(chat.choices[0]!.message.content, grpc.map((m) => m.text).join(''));
  const stream = await client.chat.completions.create({ model: 'gqa', messages, max_tokens: 12, temperature: 0, stream: true });
  let content = '';
  let role: string | undefined;
  for await (const chunk of stream) {
    role ??= chunk.choices[0]?.delta.role;
    content += chunk.choices[0]?.delta.content ?? '';
  }
  assert.equal(role, 'assistant');
  assert.equal(content, chat.choices[0]!.message.content);
});

test('errors have the API shape and status: 400 naming the param, 404 for an unknown model, 429 when full', async () => {
  await assert.rejects(client.completions.create({ model: 'gqa', prompt: 'Hello', top_p: 1.5 }), (e: InstanceType<typeof OpenAI.APIError>) => {
    assert.equal(e.status, 400);
    assert.equal(e.param, 'top_p');
    assert.match(e.message, /top_p must be in \(0, 1\]/);
    assert.equal(e.type, 'invalid_request_error');
    return true;
  });
  await assert.rejects(client.completions.create({ model: 'nope', prompt: 'Hello' }), (e: InstanceType<typeof OpenAI.APIError>) => {
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  await assert.rejects(client.completions.create({ model: 'gqa', prompt: 'Hello', n: 2 }), (e: InstanceType<typeof OpenAI.APIError>) => {
    assert.equal(e.status, 400);
    assert.equal(e.param, 'n');
    return true;
  });
  await assert.rejects(client.completions.create({ model: 'gqa', prompt: 'Hello', made_up: 1 } as never), (e: InstanceType<typeof OpenAI.APIError>) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /unsupported parameter made_up/);
    return true;
  });
  const bad = await fetch(`${base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": "gqa", ' });
  assert.equal(bad.status, 400);
  assert.equal(typeof ((await bad.json()) as { error: { message: string } }).error.message, 'string');
  // Both places taken: the third is refused with 429. The one worker is held busy by a slow Predict run so
  // the two streams cannot finish meanwhile (their places are taken the moment they are admitted).
  const busy = (await startRun(ts, slowRequest(4096))).done;
  const long = { model: 'gqa', prompt: 'Hello', max_tokens: 120, temperature: 0, ignore_eos: true, stream: true } as OpenAI.CompletionCreateParamsStreaming;
  const first = await client.completions.create(long);
  const second = await client.completions.create(long);
  while (!ts.server.sequences.counts().some((c) => c.running === 2)) await new Promise((r) => setImmediate(r));
  await assert.rejects(client.completions.create({ model: 'gqa', prompt: 'Hello', max_tokens: 2 }), (e: InstanceType<typeof OpenAI.APIError>) => {
    assert.equal(e.status, 429);
    assert.equal(e.type, 'rate_limit_error');
    return true;
  });
  // A streamed request is refused the same way: admission comes before the stream's headers.
  const streamed = await fetch(`${base}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gqa', prompt: 'Hi', max_tokens: 2, stream: true }) });
  assert.equal(streamed.status, 429);
  assert.equal(((await streamed.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
  const chatStreamed = await fetch(`${base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gqa', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, stream: true }) });
  assert.equal(chatStreamed.status, 429);
  // Walking away from a stream (the client aborts the request) frees its place.
  first.controller.abort();
  second.controller.abort();
  await busy;
  while (ts.server.sequences.counts().some((c) => c.running > 0)) await new Promise((r) => setImmediate(r));
  const after = await client.completions.create({ model: 'gqa', prompt: 'Hello', max_tokens: 2 });
  assert.equal(after.choices[0]!.finish_reason, 'length');
});

test('the OpenAI routes leave the rest of the HTTP port as it was', async () => {
  const metrics = await fetch(`http://127.0.0.1:${ts.server.httpPort}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /tensorgate_generate_tokens_total\{model="gqa",direction="out"\} [1-9]/);
  const missing = await fetch(`${base}/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { type: string } }).error.type, 'not_found_error');
});
