/**
 * SIGTERM on the real `tensorgate serve` process: health goes NOT_SERVING, the in-flight request
 * finishes and gets its answer, and the process exits 0.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { createModelClient } from '../src/client/model-client';
import { addModel, f32Tensor, tempDir, unary } from './common';
import { startServe as startServeProcess } from './serve-process';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';

let repo: ReturnType<typeof tempDir>;
before(() => {
  repo = tempDir('shutdown');
  addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
});
after(() => repo.cleanup());

/** The real CLI on ephemeral ports, debug logs (the tests wait for "request received"). */
function startServe(extraArgs: string[] = []) {
  return startServeProcess(['--models', repo.dir, '--port', '0', '--http-port', '0', '--workers', '1', '--log-level', 'debug', ...extraArgs]);
}

test('SIGTERM drains the in-flight request, then exits 0', async () => {
  const { child, waitFor } = startServe();
  const exited = once(child, 'exit');
  try {
    const ready = await waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('tensorgate serving on'));
    const client = createModelClient(`127.0.0.1:${ready.port}`);
    const rows = 4096;
    const inFlight = unary(client, 'Predict', { model: 'slow', inputs: [f32Tensor('x', [rows, 256], new Float32Array(rows * 256))] });
    await waitFor((l) => l.msg === 'request received');
    child.kill('SIGTERM');
    await waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('draining'));
    const res = await inFlight;
    assert.deepEqual(res.outputs[0].shape, [rows, 256], 'the in-flight request got its full answer');
    const [code, signal] = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0);
    await waitFor((l) => l.msg === 'stopped');
    client.close();
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('when the drain grace runs out, unfinished calls get UNAVAILABLE (which clients retry), not CANCELLED', async () => {
  const { child, waitFor } = startServe(['--shutdown-grace-ms', '20']);
  const exited = once(child, 'exit');
  try {
    const ready = await waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('tensorgate serving on'));
    const client = createModelClient(`127.0.0.1:${ready.port}`);
    const rows = 4096;
    const call = () => unary(client, 'Predict', { model: 'slow', inputs: [f32Tensor('x', [rows, 256], new Float32Array(rows * 256))] });
    const inFlight = [call(), call()]; // one running, one queued behind it
    await waitFor((l) => l.msg === 'request received');
    child.kill('SIGTERM');
    const outcomes = await Promise.allSettled(inFlight);
    for (const o of outcomes) {
      assert.equal(o.status, 'rejected');
      const err = (o as PromiseRejectedResult).reason;
      assert.equal(grpc.status[err.code], 'UNAVAILABLE', err.details);
      assert.match(err.details, /the server is shutting down and its drain period of 20 ms ran out; retry on another replica/);
    }
    const [code, signal] = await exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, 'a clean exit, not an abort');
    client.close();
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
