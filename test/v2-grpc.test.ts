/**
 * The v2 gRPC front door (inference.GRPCInferenceService) against a real server: ModelInfer with raw and
 * typed contents equals ModelService Predict byte for byte, every dtype round-trips through an identity
 * model, bad requests get INVALID_ARGUMENT / NOT_FOUND naming what is wrong, ModelStreamInfer keeps going
 * past a failed request, and the metadata, readiness, config, statistics and repository RPCs report what
 * the server serves.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { addModel, copyBundledModel, expectStatus, f32Tensor, float32s, seededFloats, slowRequest, startTestServer, tempDir, unary, type TestServer } from './common';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';
import { IDENTITY_DTYPES, identityModelOf, writeIdentityModel, writeSlowModel } from './fixtures/onnx-fixtures';
import { boolParam, createInferenceClient, int64Param, stringParam, v2Call, type InferenceClient } from '../src/client/inference-client';
import { dataTypeByName, type DataTypeName } from '../src/core/dtype';
import { bytesToValues } from '../src/core/tensor-values';

let ts: TestServer;
let v2: InferenceClient;
let v2Exact: InferenceClient;
let repo: ReturnType<typeof tempDir>;

before(async () => {
  repo = tempDir('v2-grpc');
  copyBundledModel(repo.dir, 'mlp');
  copyBundledModel(repo.dir, 'sentiment');
  addModel(repo.dir, 'identity', undefined, { 1: writeIdentityModel });
  for (const dtype of IDENTITY_DTYPES) addModel(repo.dir, `identity_${dtype}`, undefined, { 1: identityModelOf(dtype) });
  addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
  ts = await startTestServer({ modelRepository: repo.dir, workers: 1, modelControlMode: 'explicit', loadModels: ['*'] });
  v2 = createInferenceClient(ts.address);
  v2Exact = createInferenceClient(ts.address, true);
});

after(async () => {
  v2?.close();
  v2Exact?.close();
  await ts?.close();
  repo?.cleanup();
});

const mlpInput = (rows: number, seed = 7) => Buffer.from(seededFloats(rows * 64, seed).buffer);

test('server liveness, readiness and metadata', async () => {
  assert.deepEqual(await v2Call(v2, 'ServerLive', {}), { live: true });
  assert.deepEqual(await v2Call(v2, 'ServerReady', {}), { ready: true });
  const meta = await v2Call(v2, 'ServerMetadata', {});
  assert.equal(meta.name, 'tensorgate');
  assert.ok(meta.extensions.includes('binary_tensor_data') && meta.extensions.includes('statistics'));
});

test('ModelInfer with raw contents equals Predict byte for byte, and echoes the id', async () => {
  const data = mlpInput(3);
  const predicted = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [{ name: 'input', dtype: 'FP32', shape: [3, 64], data }] });
  const res = await v2Call(v2, 'ModelInfer', {
    model_name: 'mlp',
    id: 'req-42',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 64] }],
    raw_input_contents: [data],
  });
  assert.equal(res.model_name, 'mlp');
  assert.equal(res.model_version, '1');
  assert.equal(res.id, 'req-42');
  assert.deepEqual(res.outputs.map((o: any) => [o.name, o.datatype, o.shape]), [['logits', 'FP32', [3, 10]]]);
  assert.equal(res.raw_output_contents.length, 1);
  assert.deepEqual(Buffer.from(res.raw_output_contents[0]), Buffer.from(predicted.outputs[0].data));
});

test('ModelInfer with typed contents, answered in typed contents when binary_data_output is false', async () => {
  const values = Array.from(seededFloats(64, 3));
  const predicted = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], values)] });
  const res = await v2Call(v2, 'ModelInfer', {
    model_name: 'mlp',
    model_version: '1',
    parameters: { binary_data_output: boolParam(false), priority: int64Param(1), timeout: int64Param(5_000_000) },
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], contents: { fp32_contents: values } }],
    outputs: [{ name: 'logits' }],
  });
  assert.equal(res.raw_output_contents.length, 0);
  const expected = Array.from(float32s(predicted.outputs[0].data));
  assert.deepEqual(res.outputs[0].contents.fp32_contents, expected);
});

/** Raw bytes that cover every byte value; BOOL gets 0/1. */
function sample(dtype: DataTypeName, count: number): Buffer {
  const size = dataTypeByName(dtype)!.byteSize;
  const b = Buffer.alloc(count * size);
  for (let i = 0; i < b.length; i++) b[i] = dtype === 'BOOL' ? i % 2 : (i * 37 + 11) & 0xff;
  return b;
}

const STRINGS = ['', 'a', 'héllo', '😀', 'x'.repeat(300), 'z'];
const lengthPrefixed = (strings: string[]) =>
  Buffer.concat(strings.flatMap((s) => { const b = Buffer.from(s); const n = Buffer.alloc(4); n.writeUInt32LE(b.length); return [n, b]; }));

test('every dtype round-trips through the identity model, raw and typed', async () => {
  const types = IDENTITY_DTYPES.map((s) => s.toUpperCase() as DataTypeName);
  const v2Name = (t: DataTypeName) => (t === 'STRING' ? 'BYTES' : t);
  const raw = types.map((t) => (t === 'STRING' ? lengthPrefixed(STRINGS) : sample(t, 6)));
  const inputs = types.map((t) => ({ name: `x_${t.toLowerCase()}`, datatype: v2Name(t), shape: [2, 3] }));
  const rawRes = await v2Call(v2, 'ModelInfer', { model_name: 'identity', inputs, raw_input_contents: raw });
  types.forEach((t, i) => {
    const at = rawRes.outputs.findIndex((o: any) => o.name === `y_${t.toLowerCase()}`);
    assert.ok(at >= 0, `output of ${t}`);
    assert.equal(rawRes.outputs[at].datatype, v2Name(t));
    assert.deepEqual(rawRes.outputs[at].shape, [2, 3]);
    assert.deepEqual(Buffer.from(rawRes.raw_output_contents[at]), raw[i], `${t} raw bytes`);
  });

  // Typed: every type with a typed field (FP16 has none in the protocol).
  const typedTypes = types.filter((t) => t !== 'FP16');
  const field: Record<string, string> = {
    BOOL: 'bool_contents', INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents', INT64: 'int64_contents',
    UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents', UINT64: 'uint64_contents',
    FP32: 'fp32_contents', FP64: 'fp64_contents', STRING: 'bytes_contents',
  };
  const valuesOf = (t: DataTypeName, i: number) =>
    t === 'STRING' ? STRINGS.map((s) => Buffer.from(s)) : bytesToValues(t, raw[i]!).map((v) => (typeof v === 'bigint' ? v.toString() : v));
  for (const t of typedTypes) {
    const model = `identity_${t.toLowerCase()}`;
    const values = valuesOf(t, types.indexOf(t));
    // 64-bit elements decoded as numbers would round: that client decodes them as exact strings.
    const client = t === 'INT64' || t === 'UINT64' ? v2Exact : v2;
    const res = await v2Call(client, 'ModelInfer', {
      model_name: model,
      parameters: { binary_data_output: boolParam(false) },
      inputs: [{ name: 'x', datatype: v2Name(t), shape: [2, 3], contents: { [field[t]!]: values } }],
    });
    const out = res.outputs[0];
    assert.deepEqual([out.name, out.datatype, out.shape.map(Number)], ['y', v2Name(t), [2, 3]], model);
    const got = out.contents[field[t]!].map((v: unknown) => (Buffer.isBuffer(v) ? v.toString() : t === 'INT64' || t === 'UINT64' ? String(v) : v));
    const want = t === 'STRING' ? STRINGS : values.map((v) => (t === 'INT64' || t === 'UINT64' ? String(v) : v));
    assert.deepEqual(got, t === 'FP32' ? (want as number[]).map((v) => Math.fround(v)) : want, `${t} typed contents`);
    // The same model answers raw contents with the bytes the typed elements encode.
    const rawRes = await v2Call(v2, 'ModelInfer', { model_name: model, inputs: [{ name: 'x', datatype: v2Name(t), shape: [2, 3] }], raw_input_contents: [raw[types.indexOf(t)]] });
    assert.deepEqual(Buffer.from(rawRes.raw_output_contents[0]), raw[types.indexOf(t)], `${t} raw contents`);
  }
  // FP16 has no typed field: its elements travel raw only, and asking for them typed is refused by name.
  await expectStatus(
    v2Call(v2, 'ModelInfer', { model_name: 'identity_fp16', inputs: [{ name: 'x', datatype: 'FP16', shape: [1, 1], contents: { fp32_contents: [1] } }] }),
    grpc.status.INVALID_ARGUMENT,
    /FP16 has no typed contents field in the protocol; send its elements in raw_input_contents/,
  );
  await expectStatus(
    v2Call(v2, 'ModelInfer', {
      model_name: 'identity_fp16',
      parameters: { binary_data_output: boolParam(false) },
      inputs: [{ name: 'x', datatype: 'FP16', shape: [1, 1] }],
      raw_input_contents: [Buffer.alloc(2)],
    }),
    grpc.status.INVALID_ARGUMENT,
    /output 'y' is FP16, which has no typed contents field/,
  );
});

test('bad requests are refused with the status and a message naming the problem', async () => {
  const mlp = { model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }] };
  const cases: [object, grpc.status, RegExp][] = [
    [{ ...mlp, model_name: 'nope', raw_input_contents: [mlpInput(1)] }, grpc.status.NOT_FOUND, /model 'nope' not found/],
    [{ ...mlp, model_version: '9', raw_input_contents: [mlpInput(1)] }, grpc.status.NOT_FOUND, /version '9' of model 'mlp' not found/],
    [{ ...mlp, raw_input_contents: [mlpInput(1), mlpInput(1)] }, grpc.status.INVALID_ARGUMENT, /raw_input_contents has 2 entries for 1 inputs/],
    [{ ...mlp, raw_input_contents: [mlpInput(1).subarray(4)] }, grpc.status.INVALID_ARGUMENT, /raw contents have 252 bytes.*256/],
    [
      { model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], contents: { fp32_contents: [1] } }], raw_input_contents: [mlpInput(1)] },
      grpc.status.INVALID_ARGUMENT,
      /typed contents while raw_input_contents is set/,
    ],
    [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], contents: { fp32_contents: [1, 2] } }] }, grpc.status.INVALID_ARGUMENT, /fp32_contents has 2 elements; its shape needs 64/],
    [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], contents: { int_contents: new Array(64).fill(1) } }] }, grpc.status.INVALID_ARGUMENT, /FP32 elements go in contents.fp32_contents/],
    [{ ...mlp, inputs: [{ name: 'input', datatype: 'BF16', shape: [1, 64] }], raw_input_contents: [Buffer.alloc(128)] }, grpc.status.INVALID_ARGUMENT, /BF16 tensors are not supported.*bfloat16/],
    [{ ...mlp, inputs: [{ name: 'input', datatype: 'FLOAT', shape: [1, 64] }], raw_input_contents: [mlpInput(1)] }, grpc.status.INVALID_ARGUMENT, /datatype 'FLOAT' is unknown; expected one of BOOL/],
    [{ ...mlp, parameters: { sequence_id: int64Param(3) }, raw_input_contents: [mlpInput(1)] }, grpc.status.INVALID_ARGUMENT, /sequence_id.*sequence batching is not supported/],
    [{ ...mlp, parameters: { colour: stringParam('red') }, raw_input_contents: [mlpInput(1)] }, grpc.status.INVALID_ARGUMENT, /parameter 'colour' of the request is not understood; understood here: priority, timeout/],
    [{ ...mlp, parameters: { priority: stringParam('high') }, raw_input_contents: [mlpInput(1)] }, grpc.status.INVALID_ARGUMENT, /parameter 'priority' is 'high'; expected a non-negative integer/],
    [{ ...mlp, outputs: [{ name: 'probabilities' }], raw_input_contents: [mlpInput(1)] }, grpc.status.INVALID_ARGUMENT, /unknown output 'probabilities'/],
    [{ ...mlp, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, '99999999999999999999'] }], raw_input_contents: [mlpInput(1)] }, grpc.status.INVALID_ARGUMENT, /shape dim 1 is/],
    [{ model_name: 'identity', inputs: [{ name: 'x_string', datatype: 'BYTES', shape: [1] }], raw_input_contents: [Buffer.from([5, 0, 0, 0, 65])] }, grpc.status.INVALID_ARGUMENT, /BYTES element 0 says 5 bytes but only 1 remain/],
  ];
  for (const [request, code, pattern] of cases) await expectStatus(v2Call(v2, 'ModelInfer', request), code, pattern);
  // The process and the model are fine afterwards.
  const ok = await v2Call(v2, 'ModelInfer', { ...mlp, raw_input_contents: [mlpInput(1)] });
  assert.equal(ok.outputs[0].name, 'logits');
});

test('a message that does not decode is INVALID_ARGUMENT, not INTERNAL', async () => {
  const garbage = new grpc.Client(ts.address, grpc.credentials.createInsecure());
  try {
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      garbage.makeUnaryRequest('/inference.GRPCInferenceService/ModelInfer', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff]), (e) => resolve(e!)),
    );
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /not a valid inference.GRPCInferenceService\/ModelInfer request message/);
  } finally {
    garbage.close();
  }
});

test('ModelStreamInfer: several requests in flight, one failing, the stream goes on', async () => {
  const stream = (v2.ModelStreamInfer as Function).call(v2) as grpc.ClientDuplexStream<object, any>;
  const answers: any[] = [];
  stream.on('data', (m) => answers.push(m));
  const ended = once(stream, 'end');
  const good = (id: string, seed: number) => ({ model_name: 'mlp', id, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }], raw_input_contents: [mlpInput(1, seed)] });
  stream.write(good('a', 1));
  stream.write({ model_name: 'mlp', id: 'bad', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 63] }], raw_input_contents: [Buffer.alloc(63 * 4)] });
  stream.write(good('b', 2));
  stream.write(good('c', 3));
  stream.end();
  await ended;
  assert.equal(answers.length, 4);
  const failed = answers.filter((a) => a.error_message);
  assert.equal(failed.length, 1);
  assert.match(failed[0].error_message, /input 'input': dim 1 is 63, the model expects 64/);
  const ok = answers.filter((a) => !a.error_message).map((a) => a.infer_response);
  assert.deepEqual(ok.map((r) => r.id).sort(), ['a', 'b', 'c']);
  for (const r of ok) {
    const seed = { a: 1, b: 2, c: 3 }[r.id as 'a'];
    const predicted = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [{ name: 'input', dtype: 'FP32', shape: [1, 64], data: mlpInput(1, seed) }] });
    assert.deepEqual(Buffer.from(r.raw_output_contents[0]), Buffer.from(predicted.outputs[0].data), `stream answer ${r.id}`);
  }
});

test('ModelMetadata, ModelReady and ModelConfig describe what is served', async () => {
  const meta = await v2Call(v2, 'ModelMetadata', { name: 'mlp' });
  assert.deepEqual(meta, {
    name: 'mlp',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 64] }],
    outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }],
  });
  const sentiment = await v2Call(v2, 'ModelMetadata', { name: 'sentiment', version: '1' });
  assert.equal(sentiment.inputs[0].datatype, 'INT64');
  await expectStatus(v2Call(v2, 'ModelMetadata', { name: 'nope' }), grpc.status.NOT_FOUND, /model 'nope' not found/);
  assert.deepEqual(await v2Call(v2, 'ModelReady', { name: 'mlp' }), { ready: true });
  assert.deepEqual(await v2Call(v2, 'ModelReady', { name: 'mlp', version: '1' }), { ready: true });
  assert.deepEqual(await v2Call(v2, 'ModelReady', { name: 'mlp', version: '2' }), { ready: false });
  assert.deepEqual(await v2Call(v2, 'ModelReady', { name: 'nope' }), { ready: false });
  const { config } = await v2Call(v2, 'ModelConfig', { name: 'mlp' });
  assert.equal(config.name, 'mlp');
  assert.equal(config.platform, 'onnxruntime_onnx');
  assert.equal(config.max_batch_size, 256);
  assert.deepEqual(config.input.map((t: any) => [t.name, t.data_type, t.dims]), [['input', 'TYPE_FP32', [64]]]);
  assert.deepEqual(config.output.map((t: any) => [t.name, t.data_type, t.dims]), [['logits', 'TYPE_FP32', [10]]]);
  assert.ok(config.dynamic_batching, 'dynamic batching reported');
});

test('ModelStatistics counts the requests made, from the same observations as the metrics', async () => {
  const before = (await v2Call(v2, 'ModelStatistics', { name: 'sentiment' })).model_stats[0];
  const ids = { name: 'token_ids', datatype: 'INT64', shape: [1, 2] };
  const raw = Buffer.from(new BigInt64Array([5n, 9n]).buffer);
  for (let i = 0; i < 3; i++) await v2Call(v2, 'ModelInfer', { model_name: 'sentiment', parameters: { bypass_cache: boolParam(true) }, inputs: [ids], raw_input_contents: [raw] });
  await expectStatus(v2Call(v2, 'ModelInfer', { model_name: 'sentiment', inputs: [{ ...ids, shape: [1, 3] }], raw_input_contents: [raw] }), grpc.status.INVALID_ARGUMENT);
  const after = (await v2Call(v2, 'ModelStatistics', { name: 'sentiment', version: '1' })).model_stats;
  assert.equal(after.length, 1);
  const s = after[0];
  assert.equal(s.name, 'sentiment');
  assert.equal(s.version, '1');
  const stat = s.inference_stats;
  assert.equal(stat.success.count - before.inference_stats.success.count, 3);
  assert.equal(stat.fail.count - before.inference_stats.fail.count, 1);
  assert.equal(stat.compute_infer.count - before.inference_stats.compute_infer.count, 3);
  assert.equal(s.inference_count - before.inference_count, 3);
  assert.equal(s.execution_count - before.execution_count, 3);
  assert.ok(stat.success.ns > before.inference_stats.success.ns);
  assert.ok(s.last_inference > 0);
  const all = (await v2Call(v2, 'ModelStatistics', {})).model_stats.map((m: any) => m.name);
  assert.deepEqual(all.sort(), ts.server.repository.list().map((m) => m.name).sort());
  await expectStatus(v2Call(v2, 'ModelStatistics', { name: 'nope' }), grpc.status.NOT_FOUND);
});

test('RepositoryIndex lists every version; unload drains the running request first, load brings the model back', async () => {
  const index = (await v2Call(v2, 'RepositoryIndex', {})).models;
  const names = ts.server.repository.list().map((m) => m.name).sort();
  assert.deepEqual(index.map((m: any) => [m.name, m.version, m.state]), names.map((n) => [n, '1', 'READY']));
  // A request is running on the only worker when the unload arrives: it must complete, and the unload after it.
  const started = once(ts.server.pool, 'run-start');
  const running = unary(ts.client, 'Predict', slowRequest(2048));
  await started;
  // The order on the server: the run finishes before the version's sessions are released.
  const order: string[] = [];
  const onBatch = (b: { key: string; ok: boolean }) => order.push(`run finished ok=${b.ok}`);
  const onUnload = (v: { model: string }) => order.push(`${v.model} unloaded`);
  ts.server.scheduler.on('batch-done', onBatch);
  ts.server.repository.on('version-unloaded', onUnload);
  try {
    const [answer] = await Promise.all([running, v2Call(v2, 'RepositoryModelUnload', { model_name: 'slow' })]);
    assert.deepEqual(answer.outputs[0].shape, [2048, 256], 'the running request is answered, not failed');
  } finally {
    ts.server.scheduler.off('batch-done', onBatch);
    ts.server.repository.off('version-unloaded', onUnload);
  }
  assert.deepEqual(order, ['run finished ok=true', 'slow unloaded']);
  await expectStatus(unary(ts.client, 'Predict', slowRequest(1)), grpc.status.NOT_FOUND, /model 'slow' not found/);
  const afterUnload = (await v2Call(v2, 'RepositoryIndex', {})).models.find((m: any) => m.name === 'slow');
  assert.deepEqual([afterUnload.state, afterUnload.reason], ['UNAVAILABLE', 'unloaded']);
  assert.deepEqual((await v2Call(v2, 'RepositoryIndex', { ready: true })).models.map((m: any) => m.name), names.filter((n) => n !== 'slow'));
  assert.deepEqual(await v2Call(v2, 'ServerReady', {}), { ready: true }, 'an unloaded model does not make the server unready');

  await v2Call(v2, 'RepositoryModelLoad', { model_name: 'slow' });
  const res = await unary(ts.client, 'Predict', slowRequest(1));
  assert.deepEqual(res.outputs[0].shape, [1, 256]);
  await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: '../mlp' }), grpc.status.INVALID_ARGUMENT, /not a folder name/);
  await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: 'absent' }), grpc.status.NOT_FOUND, /no model folder 'absent'/);
  await expectStatus(v2Call(v2, 'RepositoryModelUnload', { model_name: 'absent' }), grpc.status.NOT_FOUND);
});

test('the timeout and priority parameters reach the queue as Predict options do', async () => {
  const started = once(ts.server.pool, 'run-start');
  const running = unary(ts.client, 'Predict', slowRequest(2048));
  await started;
  const x = { name: 'x', datatype: 'FP32', shape: [1, 256] };
  const raw = [Buffer.alloc(256 * 4)];
  // 1 ms in the queue behind a run of many ms: refused unrun, as a Predict with timeout_us would be.
  await expectStatus(
    v2Call(v2, 'ModelInfer', { model_name: 'slow', parameters: { timeout: int64Param(1000) }, inputs: [x], raw_input_contents: raw }),
    grpc.status.DEADLINE_EXCEEDED,
    // The scheduler's timer, or (when the timer fires late on a loaded machine) the check before the run.
    /queue timeout passed while queued; the request was not run|deadline passed before execution started; nothing was run/,
  );
  await expectStatus(
    v2Call(v2, 'ModelInfer', { model_name: 'slow', parameters: { priority: int64Param(5) }, inputs: [x], raw_input_contents: raw }),
    grpc.status.INVALID_ARGUMENT,
    /priority 5/,
  );
  await running;
});

test('concurrent unloads of one model both finish after one drain; unloading again is a no-op; a load brings it back', async () => {
  const started = once(ts.server.pool, 'run-start');
  const running = unary(ts.client, 'Predict', slowRequest(2048));
  await started;
  const released: string[] = [];
  const onUnload = (v: { key: string }) => released.push(v.key);
  ts.server.repository.on('version-unloaded', onUnload);
  try {
    const unloads = [v2Call(v2, 'RepositoryModelUnload', { model_name: 'slow' }), v2Call(v2, 'RepositoryModelUnload', { model_name: 'slow' })];
    await Promise.all([running, ...unloads]);
  } finally {
    ts.server.repository.off('version-unloaded', onUnload);
  }
  assert.equal(released.length, 1, `the version's sessions are released exactly once: ${released.join(', ')}`);
  assert.equal(ts.server.repository.get('slow'), undefined);
  await v2Call(v2, 'RepositoryModelUnload', { model_name: 'slow' });
  await v2Call(v2, 'RepositoryModelLoad', { model_name: 'slow' });
  assert.deepEqual((await unary(ts.client, 'Predict', slowRequest(1))).outputs[0].shape, [1, 256]);
});
