/**
 * Traces: a Predict carrying a W3C traceparent yields a server span in that trace carrying the model, cache
 * and queue figures as attributes, and a batch span beneath it; a batch span links every request it served.
 * One span per request plus one per execution: no spans that only hold a number.
 * The spans are collected by an in-memory exporter registered before the server starts, with the server's own
 * context manager (src/telemetry/sync-context.ts: no context across async steps), so every front door must hand
 * its span to the pipeline by hand.
 */
import * as grpc from '@grpc/grpc-js';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, test } from 'node:test';
import type { ExportResult } from '@opentelemetry/core';
import { createInferenceClient } from '../src/client/inference-client';
import { SynchronousContextManager } from '../src/telemetry/sync-context';
import { addModel, copyBundledModel, f32Tensor, seededFloats, slowRequest, startRun, startTestServer, tempDir, unary, waitQueued, type TestServer } from './common';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';
import { addGenerationModel, generate } from './generation-helpers';

/** An in-memory exporter that also announces each finished span, so a test can wait for one that ends after its call. */
class AnnouncingExporter extends InMemorySpanExporter {
  readonly ended = new EventEmitter<{ span: [span: ReadableSpan] }>();
  override export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    super.export(spans, done);
    for (const s of spans) this.ended.emit('span', s);
  }
  /** The first finished span `match` accepts, now or when it ends. */
  spanEnded(match: (s: ReadableSpan) => boolean): Promise<ReadableSpan> {
    const found = this.getFinishedSpans().find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => {
      const listener = (s: ReadableSpan) => {
        if (!match(s)) return;
        this.ended.off('span', listener);
        resolve(s);
      };
      this.ended.on('span', listener);
    });
  }
}

const exporter = new AnnouncingExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register({ contextManager: new SynchronousContextManager() });

let repo: ReturnType<typeof tempDir>;
let ts: TestServer;
before(async () => {
  repo = tempDir('tracing');
  copyBundledModel(repo.dir, 'mlp');
  addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
  addGenerationModel(repo.dir);
  ts = await startTestServer({ modelRepository: repo.dir, workers: 1 });
});
after(async () => {
  await ts.close();
  repo.cleanup();
  await provider.shutdown();
});

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const traceparent = (traceId: string, spanId: string) => {
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${traceId}-${spanId}-01`);
  md.set('tracestate', 'vendor=value');
  return md;
};
const byName = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

test('a Predict continues the caller trace: a server span with the cache and queue figures, and a batch span beneath it', async () => {
  exporter.reset();
  const res = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [2, 64], seededFloats(128, 5))] }, { metadata: traceparent(TRACE_ID, '00f067aa0ba902b7') });
  assert.equal(res.cached, false);
  const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === TRACE_ID);
  const [server] = byName(spans, 'tensorgate.v1.ModelService/Predict');
  assert.ok(server, `server span among ${spans.map((s) => s.name).join(', ')}`);
  assert.equal(server.kind, SpanKind.SERVER);
  assert.equal(parentOf(server), '00f067aa0ba902b7', 'child of the caller span');
  assert.equal(server.spanContext().traceState?.get('vendor'), 'value', 'tracestate carried');
  assert.equal(server.attributes['rpc.system'], 'grpc');
  assert.equal(server.attributes['rpc.service'], 'tensorgate.v1.ModelService');
  assert.equal(server.attributes['rpc.method'], 'Predict');
  assert.equal(server.attributes['rpc.grpc.status_code'], 0);
  assert.equal(server.attributes['tensorgate.model'], 'mlp');
  assert.equal(server.attributes['tensorgate.model.version'], '1');
  assert.equal(server.attributes['tensorgate.cache.hit'], false);
  assert.equal(server.attributes['tensorgate.queue.outcome'], 'dispatched');
  assert.equal(typeof server.attributes['tensorgate.queue.wait_ms'], 'number');
  const [batch] = byName(spans, 'tensorgate.batch');
  assert.equal(parentOf(batch!), server.spanContext().spanId);
  assert.equal(batch!.attributes['tensorgate.batch.rows'], 2);
  assert.equal(batch!.attributes['tensorgate.batch.requests'], 1);
  assert.deepEqual(batch!.links.map((l) => l.context.spanId), [server.spanContext().spanId]);
  assert.deepEqual(spans.map((s) => s.name).sort(), ['tensorgate.batch', 'tensorgate.v1.ModelService/Predict'], 'two spans: the request and its execution');

  // The repeat is a cache hit: its server span says so, and there is no batch span.
  exporter.reset();
  const hit = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [2, 64], seededFloats(128, 5))] }, { metadata: traceparent(TRACE_ID, '00f067aa0ba902b8') });
  assert.equal(hit.cached, true);
  const hitSpans = exporter.getFinishedSpans();
  assert.equal(byName(hitSpans, 'tensorgate.v1.ModelService/Predict')[0]!.attributes['tensorgate.cache.hit'], true);
  assert.equal(byName(hitSpans, 'tensorgate.v1.ModelService/Predict')[0]!.attributes['tensorgate.queue.outcome'], undefined);
  assert.equal(byName(hitSpans, 'tensorgate.batch').length, 0);
});

test('a batch span links the request spans of every request it served, across traces', async () => {
  const busy = (await startRun(ts, slowRequest(4096))).done;
  exporter.reset();
  const traces = ['11111111111111111111111111111111', '22222222222222222222222222222222', '33333333333333333333333333333333'];
  const calls = traces.map((t, i) =>
    unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], seededFloats(64, 900 + i))] }, { metadata: traceparent(t, '00f067aa0ba902b7') }),
  );
  await waitQueued(ts, 'mlp@1', traces.length);
  await busy;
  await Promise.all(calls);
  const spans = exporter.getFinishedSpans();
  const batches = byName(spans, 'tensorgate.batch').filter((b) => b.attributes['tensorgate.session'] === 'mlp@1');
  assert.equal(batches.length, 1, 'one execution served the three requests');
  const batch = batches[0]!;
  assert.equal(batch.attributes['tensorgate.batch.requests'], 3);
  const requestSpans = byName(spans, 'tensorgate.v1.ModelService/Predict').filter((q) => traces.includes(q.spanContext().traceId));
  assert.equal(requestSpans.length, 3);
  assert.deepEqual(
    batch.links.map((l) => l.context.traceId).sort(),
    [...traces].sort(),
    'linked to a request of each trace',
  );
  assert.deepEqual(new Set(batch.links.map((l) => l.context.spanId)), new Set(requestSpans.map((q) => q.spanContext().spanId)));
});

test('a failed Predict records its status code; client errors do not mark the span as an error', async () => {
  exporter.reset();
  await unary(ts.client, 'Predict', { model: 'nope', inputs: [] }, { metadata: traceparent(TRACE_ID, '00f067aa0ba902b9') }).catch(() => undefined);
  const [server] = byName(exporter.getFinishedSpans(), 'tensorgate.v1.ModelService/Predict');
  assert.equal(server!.attributes['rpc.grpc.status_code'], grpc.status.NOT_FOUND);
  assert.equal(server!.status.code, 0, 'UNSET, not ERROR');
});

test('metadata RPCs get their server span too', async () => {
  exporter.reset();
  await unary(ts.client, 'ListModels', {}, { metadata: traceparent(TRACE_ID, '00f067aa0ba902ba') });
  const [list] = byName(exporter.getFinishedSpans(), 'tensorgate.v1.ModelService/ListModels');
  assert.equal(list!.spanContext().traceId, TRACE_ID);
  assert.equal(list!.attributes['rpc.method'], 'ListModels');
  assert.equal(list!.attributes['rpc.grpc.status_code'], 0);
});

test('a Generate stream is one server span: token counts, finish reason and seed as attributes, the first token as an event', async () => {
  exporter.reset();
  const TRACE = '0af7651916cd43dd8448eb211c80319c';
  const messages = await generate(ts, { model: 'gqa', prompt: 'Hello', max_tokens: 7, temperature: 0.7, seed: 99 }, {}, traceparent(TRACE, 'b7ad6b7169203331'));
  assert.equal(messages.at(-1)!.finish_reason, 'LENGTH');
  const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === TRACE);
  assert.deepEqual(spans.map((s) => s.name), ['tensorgate.v1.ModelService/Generate'], 'no span per token or step');
  const [span] = spans;
  assert.equal(parentOf(span!), 'b7ad6b7169203331');
  assert.equal(span!.attributes['tensorgate.model'], 'gqa');
  assert.equal(span!.attributes['tensorgate.generate.prompt_tokens'], 5);
  assert.equal(span!.attributes['tensorgate.generate.completion_tokens'], 7);
  assert.equal(span!.attributes['tensorgate.generate.finish_reason'], 'length');
  assert.equal(span!.attributes['tensorgate.generate.seed'], '99');
  assert.deepEqual(span!.events.map((e) => e.name), ['tensorgate.generate.first_token']);
});

const inTrace = (traceId: string) => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
const serverSpan = (spans: ReadableSpan[]) => spans.find((s) => s.kind === SpanKind.SERVER);
const httpBase = () => `http://127.0.0.1:${ts.server.httpPort}`;

test('v2 ModelInfer (gRPC) and v2 REST infer: the server span carries the model and queue figures, and the execution is its child', async () => {
  exporter.reset();
  const V2_TRACE = 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1';
  const REST_TRACE = 'b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2';
  const v2 = createInferenceClient(ts.address);
  try {
    const request = { model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }], raw_input_contents: [Buffer.from(seededFloats(64, 31).buffer)] };
    await new Promise((resolve, reject) => v2.ModelInfer(request, traceparent(V2_TRACE, '00f067aa0ba902b7'), (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
  } finally {
    v2.close();
  }
  const rest = await fetch(`${httpBase()}/v2/models/mlp/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${REST_TRACE}-00f067aa0ba902b7-01` },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: Array.from(seededFloats(64, 32)) }] }),
  });
  assert.equal(rest.status, 200, await rest.text());
  for (const [traceId, method] of [[V2_TRACE, /ModelInfer$/], [REST_TRACE, /infer$/]] as const) {
    const spans = inTrace(traceId);
    const server = serverSpan(spans);
    assert.ok(server, `a server span among ${spans.map((s) => s.name).join(', ')}`);
    assert.match(server.name, method);
    assert.equal(server.attributes['tensorgate.model'], 'mlp');
    assert.equal(server.attributes['tensorgate.cache.hit'], false);
    assert.equal(server.attributes['tensorgate.queue.outcome'], 'dispatched');
    const [batch] = byName(spans, 'tensorgate.batch');
    assert.ok(batch, `a batch span in ${server.name}'s trace`);
    assert.equal(parentOf(batch), server.spanContext().spanId);
  }
});

test("an async job's span is a child of its submission's span, and its execution a child of the job's span", async () => {
  exporter.reset();
  const JOB_TRACE = 'c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3';
  const submitted = await fetch(`${httpBase()}/v2/models/mlp/infer?async=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${JOB_TRACE}-00f067aa0ba902b7-01` },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: Array.from(seededFloats(64, 33)) }] }),
  });
  assert.equal(submitted.status, 202, await submitted.text());
  const job = await exporter.spanEnded((s) => s.spanContext().traceId === JOB_TRACE && s.name.startsWith('job '));
  const spans = inTrace(JOB_TRACE);
  const submission = serverSpan(spans);
  assert.ok(submission, `the submission's server span among ${spans.map((s) => s.name).join(', ')}`);
  assert.equal(parentOf(job), submission.spanContext().spanId);
  assert.equal(job.attributes['tensorgate.model'], 'mlp');
  assert.equal(job.attributes['tensorgate.queue.outcome'], 'dispatched');
  const [batch] = byName(spans, 'tensorgate.batch');
  assert.ok(batch, `a batch span among ${spans.map((s) => s.name).join(', ')}`);
  assert.equal(parentOf(batch), job.spanContext().spanId);
});

test("an OpenAI chat completion's server span carries the generation figures", async () => {
  exporter.reset();
  const CHAT_TRACE = 'd4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4';
  const res = await fetch(`${httpBase()}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${CHAT_TRACE}-00f067aa0ba902b7-01` },
    body: JSON.stringify({ model: 'gqa', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 }),
  });
  assert.equal(res.status, 200, await res.text());
  const server = serverSpan(inTrace(CHAT_TRACE));
  assert.ok(server);
  assert.equal(server.attributes['tensorgate.model'], 'gqa');
  assert.equal(server.attributes['tensorgate.generate.completion_tokens'], 3);
  assert.equal(server.attributes['tensorgate.generate.finish_reason'], 'length');
});
