/**
 * config.yaml `canary`: requests that name no version are split by weight (observed within tolerance over many
 * requests), a caller's own request key is sticky, a named version always wins, and a canary whose runs fail
 * server-side is rolled back on its own: logged, counted, and from then on every request reaches the stable
 * version. The failing canary is a real model that loads but cannot run (a Reshape its input never fits).
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUNDLED_MODELS_DIR, expectStatus, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';
import { cli } from './cli-process';
import { DataType, GraphBuilder, floatTensor, int64Tensor, saveModel } from '../tools/onnx-builder';

/** mlp's interface (`input` [n, 64] -> `logits` [n, 10]), but every run fails: 64 elements per row never reshape to rows of 13. */
function writeBrokenMlp(file: string): void {
  const g = new GraphBuilder('broken_mlp');
  const x = g.input('input', DataType.FLOAT, ['n', 64]);
  const shape = g.initializer(int64Tensor('shape', [2], [-1, 13]));
  g.node('Reshape', [x, shape], {}, 'rows13');
  const w = g.initializer(floatTensor('w', [13, 10], new Float32Array(130)));
  g.node('MatMul', ['rows13', w], {}, 'logits');
  g.output('logits', DataType.FLOAT, ['m', 10]);
  saveModel(file, g.build());
}

function mlpFolder(root: string, name: string, config: string, versions: Record<string, (file: string) => void>): void {
  const dir = path.join(root, name);
  for (const [v, write] of Object.entries(versions)) {
    fs.mkdirSync(path.join(dir, v), { recursive: true });
    write(path.join(dir, v, 'model.onnx'));
  }
  fs.writeFileSync(path.join(dir, 'config.yaml'), config);
}

const copyMlp = (file: string) => fs.copyFileSync(path.join(BUNDLED_MODELS_DIR, 'mlp', '1', 'model.onnx'), file);
const input = (seed: number) => ({ name: 'input', dtype: 'FP32', shape: [1, 64], data: Buffer.from(seededFloats(64, seed).buffer) });

describe('canary', () => {
  let ts: TestServer;
  let repo: ReturnType<typeof tempDir>;

  before(async () => {
    repo = tempDir('canary');
    mlpFolder(repo.dir, 'split', 'version_policy: { all: true }\ncanary: { weights: { "1": 80, "2": 20 } }\n', { 1: copyMlp, 2: copyMlp });
    mlpFolder(
      repo.dir,
      'risky',
      'version_policy: { all: true }\ncanary:\n  weights: { "1": 50, "2": 50 }\n  rollback: { max_error_rate: 0.5, min_requests: 10 }\n' +
        'circuit_breaker: { volume_threshold: 1000 }\n',
      { 1: copyMlp, 2: writeBrokenMlp },
    );
    mlpFolder(repo.dir, 'promo', 'version_policy: { all: true }\ncanary: { weights: { "1": 90, "2": 10 } }\n', { 1: copyMlp, 2: copyMlp });
    ts = await startTestServer({ modelRepository: repo.dir, cacheMaxBytes: 0 });
  });

  after(async () => {
    await ts?.close();
    repo?.cleanup();
  });

  test('requests that name no version are split by weight; a request key is sticky; a named version wins', async () => {
    const n = 1000;
    const versions = await Promise.all(Array.from({ length: n }, (_, i) => unary(ts.client, 'Predict', { model: 'split', inputs: [input(i)] }).then((r) => r.version)));
    const share = versions.filter((v) => v === '2').length / n;
    // 20% of 1000: one standard deviation is 1.3 points; 5 points is almost 4 of them.
    assert.ok(Math.abs(share - 0.2) < 0.05, `version 2 got ${(share * 100).toFixed(1)}% of ${n} requests, weight 20%`);

    for (const key of ['alice', 'bob', 'carol']) {
      const seen = new Set(await Promise.all(Array.from({ length: 10 }, (_, i) => unary(ts.client, 'Predict', { model: 'split', inputs: [input(i)], options: { request_id: key } }).then((r) => r.version))));
      assert.equal(seen.size, 1, `request key ${key} went to versions ${[...seen]}`);
    }
    const pinned = await Promise.all(Array.from({ length: 20 }, (_, i) => unary(ts.client, 'Predict', { model: 'split', version: '2', inputs: [input(i)] }).then((r) => r.version)));
    assert.deepEqual(new Set(pinned), new Set(['2']));
  });

  test('a canary that fails server-side is rolled back on its own; then every request reaches the stable version', async () => {
    const rolledBack = once(ts.server.canary, 'transition');
    const failures: string[] = [];
    let i = 0;
    let done = false;
    void rolledBack.then(() => (done = true));
    while (!done) {
      await unary(ts.client, 'Predict', { model: 'risky', inputs: [input(i++)] }).catch((err: grpc.ServiceError) => failures.push(grpc.status[err.code]));
    }
    const [t] = await rolledBack;
    assert.equal(t.model, 'risky');
    assert.equal(t.version, '2');
    assert.match(t.reason, /failed \(\d+% > max_error_rate 50%\); its traffic goes to the stable version 1/);
    assert.ok(failures.length >= 5 && failures.every((c) => c === 'INTERNAL'), `canary failures: ${failures.join(', ')}`);
    const after = await Promise.all(Array.from({ length: 100 }, (_, k) => unary(ts.client, 'Predict', { model: 'risky', inputs: [input(k)] }).then((r) => r.version)));
    assert.deepEqual(new Set(after), new Set(['1']), 'no request reaches the rolled-back canary');
    assert.match(await ts.server.metrics.text(), /^tensorgate_canary_transitions_total\{model="risky",version="2",to="rolled_back"\} 1$/m);
  });

  test('promote and rollback by command: GetModel shows the split in force; each transition is counted', async () => {
    const before = await unary(ts.client, 'GetModel', { model: 'promo' });
    assert.deepEqual(before.canary, { model: 'promo', stable_version: '1', weights: [{ version: '2', weight: 10 }, { version: '1', weight: 90 }], rolled_back_versions: [] });
    const promoted = await cli(['models', 'promote', 'promo', '--address', ts.address]);
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, /^promo: stable v2; weights v2 1$/m);
    const versions = await Promise.all(Array.from({ length: 50 }, (_, k) => unary(ts.client, 'Predict', { model: 'promo', inputs: [input(k)] }).then((r) => r.version)));
    assert.deepEqual(new Set(versions), new Set(['2']));
    await expectStatus(unary(ts.client, 'ControlCanary', { model: 'promo', action: 'PROMOTE' }), grpc.status.FAILED_PRECONDITION, /no canary left to promote/);

    const rolled = await unary(ts.client, 'ControlCanary', { model: 'split', action: 'ROLLBACK' });
    assert.deepEqual(rolled, { model: 'split', stable_version: '1', weights: [{ version: '2', weight: 0 }, { version: '1', weight: 80 }], rolled_back_versions: ['2'] });
    const after = await Promise.all(Array.from({ length: 50 }, (_, k) => unary(ts.client, 'Predict', { model: 'split', inputs: [input(k)] }).then((r) => r.version)));
    assert.deepEqual(new Set(after), new Set(['1']));
    await expectStatus(unary(ts.client, 'ControlCanary', { model: 'sentiment', action: 'ROLLBACK' }), grpc.status.NOT_FOUND);
    const metrics = await ts.server.metrics.text();
    assert.match(metrics, /^tensorgate_canary_transitions_total\{model="promo",version="2",to="promoted"\} 1$/m);
    assert.match(metrics, /^tensorgate_canary_transitions_total\{model="split",version="2",to="rolled_back"\} 1$/m);
  });
});
