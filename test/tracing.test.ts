/**
 * Traces: a Predict carrying a W3C traceparent yields a server span in that trace carrying the model, cache
 * and queue figures as attributes, and a batch span beneath it; a batch span links every request it served.
 * One span per request plus one per execution: no spans that only hold a number.
 * The spans are collected by an in-memory exporter registered before the server starts.
 */
import * as grpc from '@grpc/grpc-js';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { addModel, copyBundledModel, f32Tensor, seededFloats, slowRequest, startRun, startTestServer, tempDir, unary, waitQueued, type TestServer } from './common';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';
import { addGenerationModel, generate } from './generation-helpers';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

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
