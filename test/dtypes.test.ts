/**
 * Every dtype the ONNX Runtime Node binding supports round-trips byte-exactly through an Identity model,
 * and BF16 is refused with a clear message.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { addModel, expectStatus, startTestServer, tempDir, unary, type TestServer } from './common';
import { IDENTITY_DTYPES, writeIdentityModel } from './fixtures/onnx-fixtures';
import { dataTypeByName, type DataTypeName } from '../src/core/dtype';

let ts: TestServer;
let repo: ReturnType<typeof tempDir>;
before(async () => {
  repo = tempDir('dtypes');
  addModel(repo.dir, 'identity', undefined, { 1: writeIdentityModel });
  ts = await startTestServer({ modelRepository: repo.dir });
});
after(async () => {
  await ts.close();
  repo.cleanup();
});

/** Bytes covering each type's edges: every byte value appears, so any conversion would show. */
function sampleBytes(count: number, size: number, dtype: DataTypeName): Buffer {
  const b = Buffer.alloc(count * size);
  for (let i = 0; i < b.length; i++) b[i] = (i * 37 + 11) & 0xff;
  if (dtype === 'BOOL') for (let i = 0; i < b.length; i++) b[i] = i % 3 === 0 ? 1 : 0;
  return b;
}

test('every supported dtype round-trips byte-exactly', async () => {
  const inputs = IDENTITY_DTYPES.map((suffix) => {
    const dtype = suffix.toUpperCase() as DataTypeName;
    const info = dataTypeByName(dtype)!;
    if (dtype === 'STRING') {
      return { name: `x_${suffix}`, dtype, shape: [2, 3], data: Buffer.alloc(0), string_data: ['', 'a', 'héllo', '😀', 'x'.repeat(100), 'z'] };
    }
    return { name: `x_${suffix}`, dtype, shape: [2, 3], data: sampleBytes(6, info.byteSize, dtype), string_data: [] };
  });
  assert.equal(inputs.length, 13);
  const res = await unary(ts.client, 'Predict', { model: 'identity', inputs });
  for (const input of inputs) {
    const out = res.outputs.find((o: { name: string }) => o.name === input.name.replace('x_', 'y_'));
    assert.ok(out, `output for ${input.name}`);
    assert.equal(out.dtype, input.dtype);
    assert.deepEqual(out.shape, [2, 3]);
    assert.deepEqual(Buffer.from(out.data), input.data, `${input.dtype} bytes`);
    assert.deepEqual(out.string_data, input.string_data, `${input.dtype} strings`);
  }
});

test('BF16 is refused with a message saying why', async () => {
  const identityDir = path.join(repo.dir, 'identity');
  assert.ok(identityDir);
  await expectStatus(
    unary(ts.client, 'Predict', { model: 'identity', inputs: [{ name: 'x_fp32', dtype: 'BF16', shape: [1, 1], data: Buffer.alloc(2) }] }),
    grpc.status.INVALID_ARGUMENT,
    /BF16 tensors are not supported.*bfloat16/,
  );
});
