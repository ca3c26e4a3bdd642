/**
 * Bad input gets the right status and a message that names the tensor, what came and what was expected;
 * the server keeps serving after every one of them.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  addModel, copyBundledModel, expectStatus, f32Tensor, startTestServer, tempDir, unary, type TestServer,
} from './common';
import { writeFixedShapeModel, writeReshapeModel } from './fixtures/onnx-fixtures';

const { INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, INTERNAL } = grpc.status;
let ts: TestServer;
let repo: ReturnType<typeof tempDir>;

before(async () => {
  repo = tempDir('validation');
  copyBundledModel(repo.dir, 'mlp');
  copyBundledModel(repo.dir, 'sentiment');
  addModel(repo.dir, 'fixed', undefined, { 1: writeFixedShapeModel });
  addModel(repo.dir, 'reshape', undefined, { 1: writeReshapeModel });
  ts = await startTestServer({ modelRepository: repo.dir, maxElements: 100_000 });
});
after(async () => {
  await ts.close();
  repo.cleanup();
});

const mlpInput = (shape = [1, 64], count = 64) => f32Tensor('input', shape, new Float32Array(count));
const predict = (req: object) => unary(ts.client, 'Predict', req);

async function stillServing(): Promise<void> {
  const res = await predict({ model: 'mlp', inputs: [mlpInput()] });
  assert.deepEqual(res.outputs[0].shape, [1, 10]);
}

const cases: { name: string; req: object; code: grpc.status; message: RegExp }[] = [
  { name: 'unknown model', req: { model: 'nope', inputs: [mlpInput()] }, code: NOT_FOUND, message: /model 'nope' not found; available models: fixed, mlp, reshape, sentiment/ },
  { name: 'unknown version', req: { model: 'mlp', version: '9', inputs: [mlpInput()] }, code: NOT_FOUND, message: /version '9' of model 'mlp' not found; served versions: 1/ },
  { name: 'no inputs', req: { model: 'mlp' }, code: INVALID_ARGUMENT, message: /no inputs sent; model 'mlp' version 1 expects: input FP32 \[batch, 64\]/ },
  { name: 'missing input name', req: { model: 'mlp', inputs: [{ ...mlpInput(), name: '' }] }, code: INVALID_ARGUMENT, message: /inputs\[0\] has no name/ },
  { name: 'unknown input', req: { model: 'mlp', inputs: [mlpInput(), { ...mlpInput(), name: 'extra' }] }, code: INVALID_ARGUMENT, message: /unknown input 'extra'; .* expects inputs: input FP32/ },
  { name: 'duplicate input', req: { model: 'mlp', inputs: [mlpInput(), mlpInput()] }, code: INVALID_ARGUMENT, message: /input 'input' is sent more than once/ },
  { name: 'missing input', req: { model: 'reshape', inputs: [f32Tensor('x', [1, 4], new Float32Array(4))] }, code: INVALID_ARGUMENT, message: /missing input shape INT64 \[2\]/ },
  { name: 'dtype unspecified', req: { model: 'mlp', inputs: [{ ...mlpInput(), dtype: 'DATA_TYPE_UNSPECIFIED' }] }, code: INVALID_ARGUMENT, message: /input 'input': dtype is missing/ },
  { name: 'wrong dtype', req: { model: 'mlp', inputs: [{ ...mlpInput(), dtype: 'FP64', data: Buffer.alloc(64 * 8) }] }, code: INVALID_ARGUMENT, message: /input 'input': dtype FP64 sent, the model expects FP32/ },
  { name: 'wrong rank', req: { model: 'mlp', inputs: [mlpInput([64], 64)] }, code: INVALID_ARGUMENT, message: /input 'input': rank 1 shape \[64\] sent, the model expects rank 2: input FP32 \[batch, 64\]/ },
  { name: 'wrong fixed dim', req: { model: 'mlp', inputs: [mlpInput([1, 63], 63)] }, code: INVALID_ARGUMENT, message: /input 'input': dim 1 is 63, the model expects 64/ },
  { name: 'fixed model dim 0', req: { model: 'fixed', inputs: [f32Tensor('x', [3, 3], new Float32Array(9))] }, code: INVALID_ARGUMENT, message: /input 'x': dim 0 is 3, the model expects 2/ },
  { name: 'negative dim', req: { model: 'mlp', inputs: [mlpInput([-1, 64], 64)] }, code: INVALID_ARGUMENT, message: /invalid dim 0 \(-1\); dims are non-negative integers/ },
  { name: 'data too short', req: { model: 'mlp', inputs: [{ ...mlpInput(), data: Buffer.alloc(255) }] }, code: INVALID_ARGUMENT, message: /input 'input': data has 255 bytes, shape \[1, 64\] of FP32 needs 256/ },
  { name: 'data too long', req: { model: 'mlp', inputs: [{ ...mlpInput(), data: Buffer.alloc(260) }] }, code: INVALID_ARGUMENT, message: /data has 260 bytes.*needs 256/ },
  { name: 'string_data on numeric', req: { model: 'mlp', inputs: [{ ...mlpInput(), string_data: ['a'] }] }, code: INVALID_ARGUMENT, message: /string_data is only for STRING tensors/ },
  { name: 'text to a tensor model', req: { model: 'mlp', input_text: 'hello' }, code: INVALID_ARGUMENT, message: /has no text pipeline, so input_text cannot be used; send tensors in inputs: input FP32/ },
  { name: 'text and inputs together', req: { model: 'sentiment', input_text: 'hi', inputs: [mlpInput()] }, code: INVALID_ARGUMENT, message: /either input_text or inputs/ },
  { name: 'unknown output', req: { model: 'mlp', inputs: [mlpInput()], outputs: ['nope'] }, code: INVALID_ARGUMENT, message: /unknown output 'nope'; .* has outputs: logits/ },
  { name: 'too many elements', req: { model: 'mlp', inputs: [mlpInput([2000, 64], 2000 * 64)] }, code: RESOURCE_EXHAUSTED, message: /128000 elements, more than the limit of 100000.*--max-elements/ },
  { name: 'dtype not in the proto', req: { model: 'mlp', inputs: [{ ...mlpInput(), dtype: 99 }] }, code: INVALID_ARGUMENT, message: /input 'input': dtype '99' is unknown; expected one of FP32, FP64, FP16/ },
  { name: 'int64 dim beyond 2^53', req: { model: 'mlp', inputs: [{ ...mlpInput(), shape: ['9223372036854775807', 64] }] }, code: INVALID_ARGUMENT, message: /shape dim 0 is '9223372036854775807', beyond any tensor size/ },
  { name: 'a dim no tensor can have, beside a 0 dim', req: { model: 'sentiment', inputs: [{ name: 'token_ids', dtype: 'INT64', shape: [0, 2 ** 53 - 1], data: Buffer.alloc(0), string_data: [] }] }, code: INVALID_ARGUMENT, message: /dim 1 is 9007199254740991, more than the 100000 elements a request may carry/ },
  { name: 'token id outside the vocabulary', req: { model: 'sentiment', inputs: [{ name: 'token_ids', dtype: 'INT64', shape: [1, 2], data: Buffer.from(new BigInt64Array([5n, 999_999n]).buffer), string_data: [] }] }, code: INVALID_ARGUMENT, message: /element 1 is token id 999999, outside the model's vocabulary of 3328 ids/ },
  { name: 'negative token id', req: { model: 'sentiment', inputs: [{ name: 'token_ids', dtype: 'INT64', shape: [1, 1], data: Buffer.from(new BigInt64Array([-1n]).buffer), string_data: [] }] }, code: INVALID_ARGUMENT, message: /element 0 is token id -1, outside the model's vocabulary/ },
  { name: 'input_text over --max-text-bytes', req: { model: 'sentiment', input_text: 'good '.repeat(20_000) }, code: RESOURCE_EXHAUSTED, message: /input_text is 100000 bytes, more than the limit of 65536; .* reads only its first 128 words/ },
  { name: 'huge shape with no data', req: { model: 'mlp', inputs: [{ ...mlpInput(), shape: [2 ** 40, 64], data: Buffer.alloc(0) }] }, code: RESOURCE_EXHAUSTED, message: /more than the limit/ },
];

for (const c of cases) {
  test(`${c.name} -> ${grpc.status[c.code]} with a useful message, and the server still serves`, async () => {
    await expectStatus(predict(c.req), c.code, c.message);
    await stillServing();
  });
}

test('an ONNX Runtime failure is INTERNAL on a model that ran nothing yet, INVALID_ARGUMENT once it runs other inputs', async () => {
  const shape = { name: 'shape', dtype: 'INT64', shape: [2], data: Buffer.from(new BigInt64Array([3n, 5n]).buffer), string_data: [] };
  const bad = { model: 'reshape', inputs: [f32Tensor('x', [2, 4], new Float32Array(8)), shape] };
  const err = await expectStatus(predict(bad), INTERNAL, /ONNX Runtime failed: .*/);
  assert.match(err.details, /reshape|Reshape|shape/i);
  const good = { ...shape, data: Buffer.from(new BigInt64Array([4n, 2n]).buffer) };
  const res = await predict({ model: 'reshape', inputs: [f32Tensor('x', [2, 4], new Float32Array(8)), good] });
  assert.deepEqual(res.outputs[0].shape, [4, 2]);
  await expectStatus(predict(bad), INVALID_ARGUMENT, /'reshape@1' cannot run this request's input, while it runs other inputs, so the input is the cause: ONNX Runtime failed/);
  await stillServing();
});

test('a message over the size limit is RESOURCE_EXHAUSTED naming both sizes', async () => {
  const small = await startTestServer({ modelRepository: repo.dir, maxMessageBytes: 4096 });
  try {
    await expectStatus(
      unary(small.client, 'Predict', { model: 'mlp', inputs: [mlpInput([20, 64], 20 * 64)] }),
      RESOURCE_EXHAUSTED,
      /larger than max \(\d+ vs 4096\)/,
    );
    const res = await unary(small.client, 'Predict', { model: 'mlp', inputs: [mlpInput()] });
    assert.deepEqual(res.outputs[0].shape, [1, 10]);
  } finally {
    await small.close();
  }
});

test('bytes that are not a PredictRequest get INVALID_ARGUMENT, not a crash', async () => {
  const raw = new grpc.Client(ts.address, grpc.credentials.createInsecure());
  try {
    const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
      raw.makeUnaryRequest(
        '/tensorgate.v1.ModelService/Predict',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x1a, 0x10, 0x0a, 0x05]), // 'inputs' claims 16 bytes, 2 follow
        (e, v) => (e ? resolve(e) : reject(new Error(`unexpected success ${v}`))),
      );
    });
    assert.equal(grpc.status[err.code], 'INVALID_ARGUMENT', err.details);
    assert.match(err.details, /the request \(4 bytes\) is not a valid tensorgate.v1.ModelService\/Predict request message: /);
  } finally {
    raw.close();
  }
  await stillServing();
});

test('a BOOL element other than 0 or 1 is refused', async () => {
  // No bundled model has a BOOL input, so this one is checked at the validator.
  const { validateInputs } = await import('../src/core/validate.js');
  assert.throws(
    () => validateInputs([{ name: 'b', dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 2]) }], [{ name: 'b', dtype: 'BOOL', shape: [-1], dimNames: [''] }], { maxElements: 10, maxTextBytes: 1024 }, 'test'),
    /BOOL element 1 is 2; BOOL elements are bytes 0 or 1/,
  );
});

test('echoed values stay short: a 1 MiB model name, a 20,000-dim shape, a 1 MiB input name', async () => {
  const name = 'm'.repeat(1 << 20);
  const cases: [object, grpc.status, RegExp][] = [
    [{ model: name, inputs: [mlpInput()] }, NOT_FOUND, /model 'm{64}\.\.\.' \(1048576 characters\) not found/],
    [{ model: 'mlp', inputs: [{ ...mlpInput(), shape: new Array(20_000).fill(1), data: Buffer.alloc(4) }] }, INVALID_ARGUMENT, /shape has 20000 dims; at most 32 are accepted/],
    [{ model: 'mlp', inputs: [{ ...mlpInput(), name }] }, INVALID_ARGUMENT, /unknown input 'm{64}\.\.\.' \(1048576 characters\)/],
    [{ model: 'mlp', inputs: [mlpInput()], outputs: [name] }, INVALID_ARGUMENT, /unknown output 'm{64}\.\.\.' \(1048576 characters\)/],
  ];
  for (const [req, code, message] of cases) {
    // A short deadline: before the fix the oversized status never arrived and the call waited it out.
    const err = await expectStatus(unary(ts.client, 'Predict', req, { deadlineMs: 20_000 }), code, message);
    assert.ok(err.details.length <= 1024, `status details of ${err.details.length} characters`);
  }
  await stillServing();
});
