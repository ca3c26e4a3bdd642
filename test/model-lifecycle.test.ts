/**
 * Changing models under load with zero failed requests: several clients call Predict without pause while a
 * new version is dropped in and loaded, a broken version is dropped in, the config changes, and (in poll
 * mode) the repository folder itself changes. Every answer is checked and counted; the test waits for events
 * (answers from the new version, the repository's own events), never for time.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createInferenceClient, v2Call, type InferenceClient } from '../src/client/inference-client';
import { addModel, BUNDLED_MODELS_DIR, copyBundledModel, expectStatus, seededFloats, slowRequest, startRun, startTestServer, tempDir, unary, waitQueued, type TestServer } from './common';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { cli } from './cli-process';

const CLIENTS = 6;

/** Predict loops on `model` until stopped: every answer's version counted, every failure kept. */
function continuousLoad(ts: TestServer, model: string) {
  const answers = new EventEmitter();
  const versions = new Map<string, number>();
  const failures: string[] = [];
  let stopping = false;
  let n = 0;
  const loop = async (client: number) => {
    while (!stopping) {
      const data = Buffer.from(seededFloats(64, client * 100_000 + n++).buffer);
      try {
        const res = await unary(ts.client, 'Predict', { model, inputs: [{ name: 'input', dtype: 'FP32', shape: [1, 64], data }], options: { bypass_cache: true } });
        versions.set(res.version, (versions.get(res.version) ?? 0) + 1);
        answers.emit('answer', res.version);
      } catch (err) {
        failures.push(`${grpc.status[(err as grpc.ServiceError).code]}: ${(err as grpc.ServiceError).details}`);
      }
    }
  };
  const loops = Array.from({ length: CLIENTS }, (_, i) => loop(i));
  return {
    versions,
    failures,
    /** Resolves after `count` more answers came from `version`. */
    async answersFrom(version: string, count: number): Promise<void> {
      let seen = 0;
      while (seen < count) {
        const [v] = await once(answers, 'answer');
        if (v === version) seen++;
      }
    },
    async stop(): Promise<void> {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

function addVersion(modelDir: string, version: number, bytes?: Buffer): void {
  // Written beside the repository's model folder and renamed in, as a deploy tool would: no half-written file.
  const staging = path.join(modelDir, `.staging-${version}`);
  fs.mkdirSync(staging, { recursive: true });
  if (bytes) fs.writeFileSync(path.join(staging, 'model.onnx'), bytes);
  else fs.copyFileSync(path.join(BUNDLED_MODELS_DIR, 'mlp', '1', 'model.onnx'), path.join(staging, 'model.onnx'));
  fs.renameSync(staging, path.join(modelDir, String(version)));
}

describe('explicit model control', () => {
  let ts: TestServer;
  let v2: InferenceClient;
  let repo: ReturnType<typeof tempDir>;
  let mlpDir: string;

  before(async () => {
    repo = tempDir('lifecycle');
    copyBundledModel(repo.dir, 'mlp');
    mlpDir = path.join(repo.dir, 'mlp');
    addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
    ts = await startTestServer({ modelRepository: repo.dir, workers: 1, modelControlMode: 'explicit', loadModels: ['mlp', 'slow'] });
    v2 = createInferenceClient(ts.address);
  });

  after(async () => {
    v2?.close();
    await ts?.close();
    repo?.cleanup();
  });

  test('a new version dropped in is loaded beside the serving one, switched to, and the old one drained: zero failed requests', async () => {
    const load = continuousLoad(ts, 'mlp');
    const released: string[] = [];
    const onUnloaded = (v: { key: string }) => released.push(v.key);
    ts.server.repository.on('version-unloaded', onUnloaded);
    try {
      await load.answersFrom('1', 20);
      addVersion(mlpDir, 2);
      await v2Call(v2, 'RepositoryModelLoad', { model_name: 'mlp' });
      await load.answersFrom('2', 50);
    } finally {
      await load.stop();
      ts.server.repository.off('version-unloaded', onUnloaded);
    }
    assert.deepEqual(load.failures, []);
    assert.ok(load.versions.get('1')! >= 20 && load.versions.get('2')! >= 50, JSON.stringify([...load.versions]));
    assert.deepEqual(released, ['mlp@1'], 'version 1 released once its requests finished');
    const info = await unary(ts.client, 'GetModel', { model: 'mlp' });
    assert.deepEqual(info.versions.map((v: { version: string; state: string }) => [v.version, v.state]), [['2', 'READY']]);
  });

  test('requests queued behind a long run when a reload starts are answered by the load they queued for, then it is released', async () => {
    const running = await startRun(ts, slowRequest(4096));
    const queued = Array.from({ length: 5 }, () => unary(ts.client, 'Predict', slowRequest(1)));
    await waitQueued(ts, 'slow@1', 5);
    const reloaded = v2Call(v2, 'RepositoryModelLoad', { model_name: 'slow' });
    const answers = await Promise.allSettled([running.done, ...queued]);
    assert.deepEqual(answers.map((a) => (a.status === 'fulfilled' ? 'OK' : `${(a.reason as grpc.ServiceError).details}`)), ['OK', 'OK', 'OK', 'OK', 'OK', 'OK']);
    await reloaded;
    assert.notEqual(ts.server.repository.get('slow')!.versions[0]!.key, 'slow@1', 'a new load serves now');
    assert.deepEqual((await unary(ts.client, 'Predict', slowRequest(2))).outputs[0].shape, [2, 256]);
  });

  test('a broken new version never takes traffic: the load is refused, the previous version keeps serving, reported and counted', async () => {
    const load = continuousLoad(ts, 'mlp');
    try {
      await load.answersFrom('2', 10);
      addVersion(mlpDir, 3, Buffer.from('this is not an ONNX model'));
      await expectStatus(
        v2Call(v2, 'RepositoryModelLoad', { model_name: 'mlp' }),
        grpc.status.FAILED_PRECONDITION,
        /the reload of model 'mlp' failed \(version 3: ONNX Runtime cannot load '3\/model.onnx'.*\); its previous load keeps serving/,
      );
      await load.answersFrom('2', 30);
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.failures, []);
    assert.deepEqual([...load.versions.keys()], ['2'], 'no request reached version 3');
    const info = await unary(ts.client, 'GetModel', { model: 'mlp' });
    assert.deepEqual(info.versions.map((v: { version: string; state: string }) => [v.version, v.state]), [['2', 'READY']]);
    assert.match(info.versions[0].reason, /a reload failed \(version 3: ONNX Runtime cannot load/);
    assert.match(await ts.server.metrics.text(), /^tensorgate_model_reload_failures_total\{model="mlp"\} 1$/m);
    fs.rmSync(path.join(mlpDir, '3'), { recursive: true });
  });

  test('a changed config applies through a reload with zero failed requests', async () => {
    const before = ts.server.repository.get('mlp')!.versions[0]!.key;
    fs.appendFileSync(path.join(mlpDir, 'config.yaml'), '\nexecution_timeout_ms: 60000\n');
    const load = continuousLoad(ts, 'mlp');
    try {
      await load.answersFrom('2', 10);
      // The CLI, as an operator would: models reload NAME.
      const r = await cli(['models', 'reload', 'mlp', '--address', ts.address]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^mlp reloaded in \d+ ms: v2 READY$/m);
      await load.answersFrom('2', 30);
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.failures, []);
    const entry = ts.server.repository.get('mlp')!;
    assert.equal(entry.config!.execution_timeout_ms, 60000);
    assert.notEqual(entry.versions[0]!.key, before, 'a new load of version 2 (its own sessions) serves now');
  });

  test('load and unload take a model in and out; the CLI says what happened', async () => {
    copyBundledModel(repo.dir, 'sentiment');
    const loaded = await cli(['models', 'load', 'sentiment', '--address', ts.address]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stdout, /^sentiment loaded in \d+ ms: v1 READY$/m);
    const unloaded = await cli(['models', 'unload', 'sentiment', '--address', ts.address]);
    assert.equal(unloaded.code, 0, unloaded.stderr);
    assert.match(unloaded.stdout, /^sentiment unloaded in \d+ ms$/m);
    await expectStatus(unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'good' }), grpc.status.NOT_FOUND);
  });
});

describe('poll model control', () => {
  let ts: TestServer;
  let repo: ReturnType<typeof tempDir>;

  before(async () => {
    repo = tempDir('lifecycle-poll');
    copyBundledModel(repo.dir, 'mlp');
    copyBundledModel(repo.dir, 'sentiment');
    ts = await startTestServer({ modelRepository: repo.dir, modelControlMode: 'poll', repositoryPollSecs: 0.1 });
  });

  after(async () => {
    await ts?.close();
    repo?.cleanup();
  });

  test('the repository is followed: a new version is switched to under load with zero failed requests; a removed model is unloaded', async () => {
    const load = continuousLoad(ts, 'mlp');
    try {
      await load.answersFrom('1', 10);
      addVersion(path.join(repo.dir, 'mlp'), 2);
      await load.answersFrom('2', 30);
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.failures, []);

    const unloaded = once(ts.server.repository, 'version-unloaded');
    fs.rmSync(path.join(repo.dir, 'sentiment'), { recursive: true });
    const [v] = await unloaded;
    assert.equal(v.model, 'sentiment');
    assert.equal(ts.server.repository.get('sentiment'), undefined);
  });

  test('load and unload requests are refused in poll mode, naming the flag', async () => {
    const v2 = createInferenceClient(ts.address);
    try {
      await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: 'mlp' }), grpc.status.FAILED_PRECONDITION, /model control mode is poll.*--model-control-mode explicit/);
    } finally {
      v2.close();
    }
  });
});

describe('warm-up', () => {
  let ts: TestServer;
  let repo: ReturnType<typeof tempDir>;
  const WARMUP = 'warmup:\n  - name: rows\n    count: 3\n    inputs:\n      input: { dtype: FP32, shape: [4, 64], data: random }\n';

  before(async () => {
    repo = tempDir('lifecycle-warmup');
    copyBundledModel(repo.dir, 'mlp');
    fs.appendFileSync(path.join(repo.dir, 'mlp', 'config.yaml'), `\n${WARMUP}`);
    copyBundledModel(repo.dir, 'convnet');
    // A warm-up the model cannot run (the wrong input name): the version must never be READY.
    fs.appendFileSync(path.join(repo.dir, 'convnet', 'config.yaml'), '\nwarmup:\n  - name: wrong\n    inputs:\n      pixels: { dtype: FP32, shape: [1, 3, 32, 32] }\n');
    ts = await startTestServer({ modelRepository: repo.dir, workers: 2, strictReadiness: false, modelControlMode: 'explicit', loadModels: ['*'] });
  });

  after(async () => {
    await ts?.close();
    repo?.cleanup();
  });

  test('every worker runs the warm-up before the version is READY; a warm-up that fails keeps the version UNAVAILABLE with the reason', async () => {
    const key = ts.server.repository.get('mlp')!.versions[0]!.key;
    const workers = (await ts.server.pool.stats()).slice(0, ts.server.pool.workerCount);
    assert.deepEqual(workers.map((w) => w.warmupRuns[key]), [3, 3]);
    const convnet = await unary(ts.client, 'GetModel', { model: 'convnet' });
    assert.equal(convnet.versions[0].state, 'UNAVAILABLE');
    assert.match(convnet.versions[0].reason, /'1\/model.onnx' loaded, but its warm-up 'wrong' does not fit the model: unknown input 'pixels'; missing input 'image'/);
  });

  test('a reload whose warm-up fails never takes traffic: the previous load keeps serving', async () => {
    const config = path.join(repo.dir, 'mlp', 'config.yaml');
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('shape: [4, 64]', 'shape: [4, 65]'));
    const v2 = createInferenceClient(ts.address);
    try {
      await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: 'mlp' }), grpc.status.FAILED_PRECONDITION, /warm-up 'rows' failed/);
    } finally {
      v2.close();
    }
    const res = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [{ name: 'input', dtype: 'FP32', shape: [1, 64], data: Buffer.alloc(256) }] });
    assert.equal(res.version, '1');
  });
});
