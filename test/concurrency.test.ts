/**
 * The main thread stays free while inference runs (sessions live in worker threads), and work whose
 * caller has gone (deadline passed, cancelled) is dropped before it runs: counted by the workers.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { addModel, copyBundledModel, expectStatus, f32Tensor, slowRequest, startRun, tempDir, unary, type TestServer, withTestServer } from './common';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';

let repo: ReturnType<typeof tempDir>;
before(() => {
  repo = tempDir('concurrency');
  copyBundledModel(repo.dir, 'mlp');
  addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
});
after(() => repo.cleanup());


async function slowRuns(ts: TestServer): Promise<number> {
  const stats = await ts.server.pool.stats();
  return stats.reduce((n, s) => n + (s.runs['slow@1'] ?? 0), 0);
}

test('while a long inference runs, health, ListModels and a Predict on another worker answer first', () =>
  withTestServer({ modelRepository: repo.dir, workers: 2 }, async (ts) => {
    let slowDone = false;
    const { done } = await startRun(ts, slowRequest(8192)); // the long run is now inside a worker
    const slow = done.then((r) => {
      slowDone = true;
      return r;
    });
    const health = new Promise<void>((resolve, reject) => {
      const h = new grpc.Client(ts.address, grpc.credentials.createInsecure());
      h.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (err) => {
        h.close();
        if (err) reject(err);
        else resolve();
      });
    });
    const cheap = await Promise.all([
      health.then(() => slowDone),
      unary(ts.client, 'ListModels', {}).then(() => slowDone),
      unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], new Float32Array(64))] }).then(() => slowDone),
    ]);
    assert.deepEqual(cheap, [false, false, false], 'cheap requests answered while the long inference was still running');
    const res = await slow;
    assert.deepEqual(res.outputs[0].shape, [8192, 256]);
  }));

test('a request whose deadline passes while queued is never run', () =>
  withTestServer({ modelRepository: repo.dir, workers: 1 }, async (ts) => {
    const busy = (await startRun(ts, slowRequest(4096))).done;
    await expectStatus(unary(ts.client, 'Predict', slowRequest(1), { deadlineMs: 20 }), grpc.status.DEADLINE_EXCEEDED);
    await busy;
    // The worker handles messages in order: had the expired request been dispatched, it would have run before this.
    assert.equal(await slowRuns(ts), 1, 'only the first request ran');
    assert.equal(ts.server.scheduler.queueDepth, 0);
  }));

test('a request cancelled by its client while queued is never run', () =>
  withTestServer({ modelRepository: repo.dir, workers: 1 }, async (ts) => {
    const busy = (await startRun(ts, slowRequest(4096))).done;
    const queuedBefore = ts.server.scheduler.queueDepth;
    const call = (ts.client.Predict as Function).call(ts.client, slowRequest(1), (err: grpc.ServiceError | null) => {
      assert.equal(err?.code, grpc.status.CANCELLED);
    }) as grpc.ClientUnaryCall;
    // Wait until the server has queued it, then cancel from the client side.
    while (ts.server.scheduler.queueDepth === queuedBefore) await once(ts.server.scheduler, 'queued');
    call.cancel();
    await once(ts.server.scheduler, 'dropped');
    await busy;
    assert.equal(await slowRuns(ts), 1, 'the cancelled request never ran');
  }));

test('a deadline that has already passed on arrival is refused without running', () =>
  withTestServer({ modelRepository: repo.dir, workers: 1 }, async (ts) => {
    await expectStatus(unary(ts.client, 'Predict', slowRequest(1), { deadlineMs: -1 }), grpc.status.DEADLINE_EXCEEDED);
    assert.equal(await slowRuns(ts), 0);
  }));
