/**
 * Packed cache entries (src/cache/packed-entry.ts): what goes in comes out exactly, aligned and frozen, and
 * what cannot be kept as one string is left alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pack, PACK_MAX_BYTES, stringBytes, unpack } from '../src/cache/packed-entry';
import type { InferenceResult } from '../src/core/request';

const result = (outputs: InferenceResult['outputs'], over: Partial<InferenceResult> = {}): InferenceResult => ({
  model: 'mlp', version: '1', cached: false, computeMs: 1.25, queueMs: 0.5, batchRequests: 3, batchRows: 7, outputs, ...over,
});

test('a packed result unpacks to the same fields and bytes, each output 8-byte aligned, as a frozen hit', () => {
  const a = new Uint8Array([1, 2, 3]); // 3 bytes: the next output must still start aligned
  const b = new Uint8Array(new Float64Array([Math.PI, -0]).buffer);
  const c = new Uint8Array(new BigInt64Array([2n ** 63n - 1n]).buffer);
  const r = result([
    { name: 'a', dtype: 'UINT8', shape: [3], data: a },
    { name: 'b', dtype: 'FP64', shape: [1, 2], data: b },
    { name: 'c', dtype: 'INT64', shape: [], data: c },
    { name: 'empty', dtype: 'FP32', shape: [0, 4], data: new Uint8Array(0) },
  ], { model: 'équipe/模型@x' });
  const packed = pack(r)!;
  assert.equal(typeof packed, 'string');
  assert.ok(!/[^\x00-\xff]/.test(packed), 'one byte per character, even with a non-latin1 model name');
  const hit = unpack(packed);
  assert.equal(hit.cached, true);
  assert.deepEqual({ ...hit, outputs: undefined }, { ...r, cached: true, outputs: undefined });
  hit.outputs.forEach((t, i) => {
    assert.equal(t.name, r.outputs[i]!.name);
    assert.equal(t.dtype, r.outputs[i]!.dtype);
    assert.deepEqual(t.shape, r.outputs[i]!.shape);
    assert.deepEqual([...t.data], [...r.outputs[i]!.data]);
    assert.equal(t.data.byteOffset % 8, 0);
  });
  assert.equal(new Float64Array(hit.outputs[1]!.data.buffer, hit.outputs[1]!.data.byteOffset, 2)[0], Math.PI);
  assert.ok(Object.isFrozen(hit) && Object.isFrozen(hit.outputs) && Object.isFrozen(hit.outputs[0]) && Object.isFrozen(hit.outputs[0]!.shape));
  assert.equal(stringBytes(packed) % 8, 0);
});

test('large results, string tensors, text answers and unknown fields are not packed', () => {
  const t = (bytes: number) => ({ name: 'x', dtype: 'UINT8' as const, shape: [bytes], data: new Uint8Array(bytes) });
  assert.equal(typeof pack(result([t(PACK_MAX_BYTES)])), 'string');
  assert.equal(pack(result([t(PACK_MAX_BYTES + 1)])), undefined);
  assert.equal(pack(result([{ name: 's', dtype: 'STRING', shape: [1], data: new Uint8Array(0), strings: ['a'] }])), undefined);
  assert.equal(pack(result([t(8)], { text: { label: 'positive', confidence: 0.9, labels: [] } })), undefined);
  assert.equal(pack({ ...result([t(8)]), extra: 1 } as InferenceResult), undefined);
});
