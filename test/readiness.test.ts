/**
 * Readiness (src/api/readiness.ts) through a real server and a real grpc-js health client: strict by default (a
 * model that is not READY keeps "" NOT_SERVING, and /readyz and the log say why), lax on request, the per-model
 * entries "<model>" and "<model>/<version>" following load state and circuit breakers, and draining.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { resolveServerConfig, serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import type { BreakerTransition } from '../src/resilience/circuit-breaker';
import { TensorgateServer } from '../src/server';
import { addModel, copyBundledModel, expectStatus, f32Tensor, tempDir, unary, withTestServer } from './common';
import { writeReshapeModel } from './fixtures/onnx-fixtures';
import { check, healthClient, watch, type HealthClient } from './health-client';

const corrupt = (file: string) => fs.writeFileSync(file, 'this is not an onnx model');

/** A temp repository with the bundled mlp and a model whose only version cannot load. */
function repoWithBrokenModel() {
  const repo = tempDir('readiness');
  copyBundledModel(repo.dir, 'mlp');
  addModel(repo.dir, 'broken', undefined, { 1: corrupt });
  return repo;
}

async function readyz(httpPort: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
  return { status: res.status, body: await res.text() };
}

async function statuses(client: HealthClient, services: string[]): Promise<Record<string, string>> {
  return Object.fromEntries(await Promise.all(services.map(async (s) => [s, await check(client, s)])));
}

const ENTRIES = ['', 'tensorgate.v1.ModelService', 'mlp', 'mlp/1', 'broken', 'broken/1'];

test('strict (default): NOT_SERVING while loading; a broken model keeps "" NOT_SERVING, /readyz and the log say why; once fixed, SERVING', async () => {
  const repo = repoWithBrokenModel();
  const lines: { level: number; msg: string; reason?: string }[] = [];
  const config = serverConfigSchema.parse({ modelRepository: repo.dir, port: 0, httpPort: 0, workers: 1 });
  const server = new TensorgateServer(config, createLogger('warn', { write: (line: string) => void lines.push(JSON.parse(line)) }));
  const port = await server.listen();
  const client = healthClient(`127.0.0.1:${port}`);
  try {
    assert.equal(config.strictReadiness, true);
    assert.equal(await check(client, ''), 'NOT_SERVING');
    assert.deepEqual(await readyz(server.httpPort), { status: 503, body: 'not ready: loading models\n' });
    const overall = watch(client, '');
    const mlp = watch(client, 'mlp');
    assert.equal(await overall.next(), 'NOT_SERVING');
    // A model that has not loaded yet is unknown, as grpc-health-check answers any unknown name; Watch updates.
    assert.equal(await mlp.next(), 'SERVICE_UNKNOWN');
    await expectStatus(check(client, 'mlp'), grpc.status.NOT_FOUND);

    await server.loadModels();
    assert.equal(await mlp.next(), 'SERVING');
    assert.deepEqual(await statuses(client, ENTRIES), {
      '': 'NOT_SERVING',
      'tensorgate.v1.ModelService': 'NOT_SERVING',
      mlp: 'SERVING',
      'mlp/1': 'SERVING',
      broken: 'NOT_SERVING',
      'broken/1': 'NOT_SERVING',
    });
    await expectStatus(check(client, 'mlp/2'), grpc.status.NOT_FOUND);
    await expectStatus(check(client, 'nope'), grpc.status.NOT_FOUND);
    const notReady = await readyz(server.httpPort);
    assert.equal(notReady.status, 503);
    assert.match(notReady.body, /^not ready: 1 of 2 models not READY \(strict readiness\): 'broken': version 1 UNAVAILABLE: ONNX Runtime cannot load '1\/model.onnx'/);
    const logged = lines.find((l) => l.msg.startsWith('not ready'));
    assert.ok(logged, 'the reason is logged');
    assert.match(logged.reason!, /'broken': version 1 UNAVAILABLE/);
    assert.match(logged.msg, /--strict-readiness false/);

    // Repaired and reloaded: every model READY, so "" turns SERVING (Watch sees it) and /readyz 200.
    fs.copyFileSync(path.join(repo.dir, 'mlp/1/model.onnx'), path.join(repo.dir, 'broken/1/model.onnx'));
    await server.repository.loadModel('broken');
    assert.equal(await overall.next(), 'SERVING');
    assert.deepEqual(Object.values(await statuses(client, ENTRIES)), ENTRIES.map(() => 'SERVING'));
    assert.deepEqual(await readyz(server.httpPort), { status: 200, body: 'ready\n' });

    // Draining: every entry NOT_SERVING, per-model ones included.
    const drained = server.shutdown(2000);
    assert.equal(await overall.next(), 'NOT_SERVING');
    assert.equal(await mlp.next(), 'NOT_SERVING');
    overall.cancel();
    mlp.cancel();
    await drained;
  } finally {
    client.close();
    await server.shutdown(0);
    repo.cleanup();
  }
});

test('lax (strictReadiness false): SERVING once loaded despite a broken model, which alone is NOT_SERVING; the drain hook holds all NOT_SERVING', async () => {
  const repo = repoWithBrokenModel();
  try {
    await withTestServer({ modelRepository: repo.dir, workers: 1, strictReadiness: false }, async (ts) => {
      const client = healthClient(ts.address);
      try {
        assert.deepEqual(await statuses(client, ENTRIES), {
          '': 'SERVING',
          'tensorgate.v1.ModelService': 'SERVING',
          mlp: 'SERVING',
          'mlp/1': 'SERVING',
          broken: 'NOT_SERVING',
          'broken/1': 'NOT_SERVING',
        });
        assert.deepEqual(await readyz(ts.server.httpPort), { status: 200, body: 'ready\n' });

        const version = watch(client, 'mlp/1');
        assert.equal(await version.next(), 'SERVING');
        ts.server.setHealth('NOT_SERVING');
        assert.equal(await version.next(), 'NOT_SERVING');
        assert.deepEqual(Object.values(await statuses(client, ENTRIES)), ENTRIES.map(() => 'NOT_SERVING'));
        assert.deepEqual(await readyz(ts.server.httpPort), { status: 503, body: 'not ready: draining: the server is shutting down\n' });
        ts.server.setHealth('SERVING');
        assert.equal(await version.next(), 'SERVING');
        assert.equal(await check(client, ''), 'SERVING');
        version.cancel();
      } finally {
        client.close();
      }
    });
  } finally {
    repo.cleanup();
  }
});

test('strict: /readyz names at most five models that are not ready, each name bounded, and counts the rest', async () => {
  const repo = tempDir('readiness-many');
  for (let i = 0; i < 7; i++) addModel(repo.dir, `broken-${i}-${'x'.repeat(200)}`, undefined, { 1: corrupt });
  try {
    await withTestServer({ modelRepository: repo.dir, workers: 1 }, async (ts) => {
      const { status, body } = await readyz(ts.server.httpPort);
      assert.equal(status, 503);
      assert.match(body, /^not ready: 7 of 7 models not READY \(strict readiness\): 'broken-0-x+\.\.\.' \(209 characters\): version 1 UNAVAILABLE/);
      assert.match(body, /; and 2 more\n$/);
      assert.ok(body.length < 2048, `${body.length} characters`);
    });
  } finally {
    repo.cleanup();
  }
});

test('a breaker that opens makes "<model>/<v>" and "<model>" NOT_SERVING ("" stays SERVING); from half_open on they are SERVING again', async () => {
  const repo = tempDir('readiness-breaker');
  copyBundledModel(repo.dir, 'mlp');
  // Never run successfully before it fails, so its ONNX Runtime failures count as the model's (server faults).
  const breaker = 'circuit_breaker: { volume_threshold: 2, error_threshold_percentage: 50, reset_timeout_ms: 1000, rolling_window_ms: 10000 }\n';
  addModel(repo.dir, 'flaky', breaker, { 1: writeReshapeModel });
  const shape = (a: bigint, b: bigint) => ({ name: 'shape', dtype: 'INT64', shape: [2], data: Buffer.from(new BigInt64Array([a, b]).buffer), string_data: [] });
  const request = (ok: boolean) => ({ model: 'flaky', inputs: [f32Tensor('x', [2, 4], new Float32Array(8)), ok ? shape(4n, 2n) : shape(3n, 5n)] });
  try {
    await withTestServer({ modelRepository: repo.dir, workers: 1 }, async (ts) => {
      const client = healthClient(ts.address);
      const version = watch(client, 'flaky/1');
      try {
        assert.equal(await version.next(), 'SERVING');
        const transitions: BreakerTransition[] = [];
        ts.server.breakers.on('state', (t: BreakerTransition) => transitions.push(t));
        for (let failures = 0; transitions.length === 0; failures++) {
          assert.ok(failures < 2, 'opens within volume_threshold failures');
          await expectStatus(unary(ts.client, 'Predict', request(false)), grpc.status.INTERNAL);
        }
        assert.equal(transitions[0].to, 'open');
        assert.equal(await version.next(), 'NOT_SERVING');
        assert.deepEqual(await statuses(client, ['', 'flaky', 'flaky/1', 'mlp', 'mlp/1']), {
          '': 'SERVING',
          flaky: 'NOT_SERVING',
          'flaky/1': 'NOT_SERVING',
          mlp: 'SERVING',
          'mlp/1': 'SERVING',
        });

        // After reset_timeout_ms the breaker lets a probe through: traffic must reach it, so it reads SERVING.
        assert.equal(await version.next(), 'SERVING');
        assert.equal(transitions.at(-1)!.to, 'half_open');
        const probe = await unary(ts.client, 'Predict', request(true));
        assert.deepEqual(probe.outputs[0].shape, [4, 2]);
        assert.equal(transitions.at(-1)!.to, 'closed');
        assert.deepEqual(await statuses(client, ['flaky', 'flaky/1']), { flaky: 'SERVING', 'flaky/1': 'SERVING' });
        version.cancel();
      } finally {
        client.close();
      }
    });
  } finally {
    repo.cleanup();
  }
});

test('--strict-readiness / TENSORGATE_STRICT_READINESS: true by default, false makes it lax, other values are refused', () => {
  assert.equal(resolveServerConfig({}, {}).strictReadiness, true);
  assert.equal(resolveServerConfig({ 'strict-readiness': 'false' }, {}).strictReadiness, false);
  assert.equal(resolveServerConfig({}, { TENSORGATE_STRICT_READINESS: 'false' }).strictReadiness, false);
  assert.equal(resolveServerConfig({ 'strict-readiness': 'true' }, { TENSORGATE_STRICT_READINESS: 'false' }).strictReadiness, true);
  assert.throws(() => resolveServerConfig({ 'strict-readiness': 'yes' }, {}), /strict-?readiness/i);
});
