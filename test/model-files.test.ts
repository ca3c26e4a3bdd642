/**
 * Model files never escape the repository, and a tampered model is refused (issue 14): model names from every
 * door, every path a config names, symlinks out of (and within) the repository, and the optional sha256 per
 * version (repository/confined-path.ts, model-name.ts, model-file.ts). Real servers on ephemeral ports, real
 * gRPC and HTTP clients, the bundled models; every temp folder and server is removed at the end.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { createInferenceClient, v2Call, type InferenceClient } from '../src/client/inference-client';
import { serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { RepositoryPoller } from '../src/repository/repository-poller';
import { TensorgateServer } from '../src/server';
import { BUNDLED_MODELS_DIR, copyBundledModel, expectStatus, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';
import { cli } from './cli-process';

const MLP_FILE = path.join(BUNDLED_MODELS_DIR, 'mlp', '1', 'model.onnx');
/** The bundled mlp's config, serving every version folder. */
const MLP_CONFIG = fs.readFileSync(path.join(BUNDLED_MODELS_DIR, 'mlp', 'config.yaml'), 'utf8').replace(/^version_policy:.*\n  specific: \[1\].*\n/m, 'version_policy: { all: true }\n');
const MLP_PBTXT = 'backend: "onnxruntime"\nmax_batch_size: 256\n';
const ESCAPE = /leads outside the model repository/;

const sha256Of = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** A model folder serving the bundled mlp as versions `versions`, with `extra` appended to its config. */
function mlpModel(dir: string, versions: number[], extra = ''): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.yaml'), MLP_CONFIG + extra);
  for (const v of versions) {
    fs.mkdirSync(path.join(dir, String(v)));
    fs.copyFileSync(MLP_FILE, path.join(dir, String(v), 'model.onnx'));
  }
}

/** The same byte sequence for every call: outputs of two versions compare byte for byte. */
const predictRequest = (model: string, version = '') => ({
  model,
  version,
  inputs: [{ name: 'input', dtype: 'FP32', shape: [2, 64], data: Buffer.from(seededFloats(128, 7).buffer) }],
  options: { bypass_cache: true },
});

/** A POST to the REST door with the path exactly as given (no client-side normalisation of '..' or '%2F'). */
function restPost(port: number, urlPath: string): Promise<{ status: number; body: { error?: string } }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: urlPath, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

describe('model files stay inside the repository', () => {
  let base: ReturnType<typeof tempDir>;
  let repo: string;
  let outside: string;
  let ts: TestServer;
  let v2: InferenceClient;

  const indexOf = async (model: string) =>
    ((await v2Call(v2, 'RepositoryIndex', {})) as { models: { name: string; version: string; state: string; reason: string }[] }).models.filter((m) => m.name === model);

  before(async () => {
    base = tempDir('model-files');
    repo = path.join(base.dir, 'repo');
    outside = path.join(base.dir, 'outside');
    fs.mkdirSync(repo);
    fs.mkdirSync(outside);
    // What lies outside: a whole model folder, loose files a config or a symlink could point at, and base/x for '../x'.
    mlpModel(path.join(outside, 'mlp'), [1]);
    mlpModel(path.join(base.dir, 'x'), [1]);
    fs.copyFileSync(MLP_FILE, path.join(outside, 'model.onnx'));
    fs.mkdirSync(path.join(outside, 'version'));
    fs.copyFileSync(MLP_FILE, path.join(outside, 'version', 'model.onnx'));
    fs.writeFileSync(path.join(outside, 'config.yaml'), MLP_CONFIG);
    fs.writeFileSync(path.join(outside, 'config.pbtxt'), MLP_PBTXT);
    fs.copyFileSync(path.join(BUNDLED_MODELS_DIR, 'sentiment', 'vocab.json'), path.join(outside, 'vocab.json'));
    fs.copyFileSync(path.join(BUNDLED_MODELS_DIR, 'tiny-lm', 'tokenizer.json'), path.join(outside, 'tokenizer.json'));
    fs.writeFileSync(path.join(outside, 'input.bin'), Buffer.alloc(64 * 4));

    copyBundledModel(repo, 'mlp');
    mlpModel(path.join(repo, '.hidden'), [1]);
    // Escapes, one per kind of path.
    fs.symlinkSync(path.join(outside, 'mlp'), path.join(repo, 'linked-out'));
    mlpModel(path.join(repo, 'file-out'), [1]);
    fs.mkdirSync(path.join(repo, 'file-out', '2'));
    fs.symlinkSync(path.join(outside, 'model.onnx'), path.join(repo, 'file-out', '2', 'model.onnx'));
    mlpModel(path.join(repo, 'version-out'), [1]);
    fs.symlinkSync(path.join(outside, 'version'), path.join(repo, 'version-out', '2'));
    mlpModel(path.join(repo, 'config-out'), [1]);
    fs.rmSync(path.join(repo, 'config-out', 'config.yaml'));
    fs.symlinkSync(path.join(outside, 'config.yaml'), path.join(repo, 'config-out', 'config.yaml'));
    mlpModel(path.join(repo, 'pbtxt-out'), [1]);
    fs.rmSync(path.join(repo, 'pbtxt-out', 'config.yaml'));
    fs.symlinkSync(path.join(outside, 'config.pbtxt'), path.join(repo, 'pbtxt-out', 'config.pbtxt'));
    for (const [name, vocab] of [['vocab-out', '../../outside/vocab.json'], ['vocab-abs', path.join(outside, 'vocab.json')]] as const) {
      copyBundledModel(repo, 'sentiment');
      fs.renameSync(path.join(repo, 'sentiment'), path.join(repo, name));
      const config = fs.readFileSync(path.join(repo, name, 'config.yaml'), 'utf8');
      fs.writeFileSync(path.join(repo, name, 'config.yaml'), config.replace('vocab: vocab.json', `vocab: ${JSON.stringify(vocab)}`));
    }
    mlpModel(path.join(repo, 'warmup-out'), [1], 'warmup:\n  - inputs:\n      input: { dtype: FP32, shape: [1, 64], data: file, file: data/input.bin }\n');
    fs.mkdirSync(path.join(repo, 'warmup-out', 'data'));
    fs.symlinkSync(path.join(outside, 'input.bin'), path.join(repo, 'warmup-out', 'data', 'input.bin'));
    copyBundledModel(repo, 'tiny-lm');
    fs.renameSync(path.join(repo, 'tiny-lm'), path.join(repo, 'tokenizer-out'));
    fs.rmSync(path.join(repo, 'tokenizer-out', 'tokenizer.json'));
    fs.symlinkSync(path.join(outside, 'tokenizer.json'), path.join(repo, 'tokenizer-out', 'tokenizer.json'));
    // Symlinks that stay inside: a model folder, a config, a version folder, a model file (relative targets).
    fs.symlinkSync('mlp', path.join(repo, 'alias'));
    fs.mkdirSync(path.join(repo, 'inside'));
    fs.writeFileSync(path.join(repo, 'inside', 'config.yaml'), MLP_CONFIG);
    fs.symlinkSync(path.join('..', 'mlp', '1'), path.join(repo, 'inside', '1'));
    fs.mkdirSync(path.join(repo, 'inside', '2'));
    fs.symlinkSync(path.join('..', '..', 'mlp', '1', 'model.onnx'), path.join(repo, 'inside', '2', 'model.onnx'));
    // sha256: both versions signed; 'unsigned' is the control that shows ONNX Runtime itself takes a tampered file.
    const sum = sha256Of(MLP_FILE);
    mlpModel(path.join(repo, 'signed'), [1, 2], `versions:\n  "1": { sha256: ${sum} }\n  "2": { sha256: ${sum.toUpperCase()} }\n`);
    mlpModel(path.join(repo, 'unsigned'), [1]);
    mlpModel(path.join(repo, 'bad-sha'), [1], 'versions:\n  "1": { sha256: not-a-digest }\n');

    ts = await startTestServer({ modelRepository: repo, workers: 1, modelControlMode: 'explicit', loadModels: ['mlp'] });
    v2 = createInferenceClient(ts.address);
  });

  after(async () => {
    v2?.close();
    await ts?.close();
    base?.cleanup();
  });

  test('a model name that is not a plain folder name is refused INVALID_ARGUMENT naming the rule, on gRPC and REST, before any file is read', async () => {
    const cases: [string, RegExp][] = [
      ['../x', /contains '\/'/],
      ['a/b', /contains '\/'/],
      ['a\\b', /contains '\\'/],
      ['..', /starts with '\.'/],
      ['.', /starts with '\.'/],
      ['.hidden', /starts with '\.'/],
      ['mlp\0', /contains NUL/],
      ['m'.repeat(300), /is 300 bytes long; a model folder name is 1-255 bytes/],
    ];
    for (const [name, rule] of cases) {
      for (const call of ['RepositoryModelLoad', 'RepositoryModelUnload']) {
        const e = await expectStatus(v2Call(v2, call, { model_name: name }), grpc.status.INVALID_ARGUMENT, rule);
        assert.match(e.details, /^model name /, `${call} ${JSON.stringify(name)}: ${e.details}`);
        assert.ok(e.details.length < 300, 'the echo of the name is bounded');
      }
      for (const action of ['load', 'unload']) {
        const res = await restPost(ts.server.httpPort, `/v2/repository/models/${encodeURIComponent(name).replace(/\./g, '%2E')}/${action}`);
        const what = `REST ${action} ${JSON.stringify(name)}: ${res.status} ${JSON.stringify(res.body)}`;
        if (name === '.' || name === '..') {
          // URL parsing resolves dot segments ('%2E%2E' is one, as in WHATWG URLs): the path names no model at all.
          assert.equal(res.status, 404, what);
          assert.match(res.body.error ?? '', /^no route for \/v2\/repository\/(models\/)?(load|unload)/, what);
          continue;
        }
        if (name.length > 100) {
          // The HTTP router bounds a path parameter (100 characters) before any handler runs: 414.
          assert.equal(res.status, 414, what);
          assert.match(res.body.error ?? '', /a path parameter is too long/, what);
          continue;
        }
        assert.equal(res.status, 400, what);
        assert.match(res.body.error ?? '', rule, what);
      }
    }
    await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: '' }), grpc.status.INVALID_ARGUMENT, /model name is empty/);
    assert.deepEqual(ts.server.repository.list().map((m) => m.name), ['mlp'], 'nothing was loaded from outside or from a hidden folder');
  });

  test('--load-model with a name that is not a folder name fails the start, naming the rule', async () => {
    const config = serverConfigSchema.parse({ port: 0, httpPort: 0, workers: 1, logLevel: 'silent', modelRepository: repo, modelControlMode: 'explicit', loadModels: ['mlp', '../x'] });
    const server = new TensorgateServer(config, createLogger('silent'));
    try {
      await server.listen();
      await assert.rejects(server.loadModels(), /model name '\.\.\/x' is not a folder name of the repository: it contains '\/'/);
      assert.equal(server.repository.list().length, 0);
    } finally {
      await server.shutdown(1000);
    }
  });

  test('a model folder that is a symlink out of the repository is UNAVAILABLE with the reason, and nothing in it is loaded', async () => {
    await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: 'linked-out' }), grpc.status.FAILED_PRECONDITION, ESCAPE);
    const [entry, ...more] = await indexOf('linked-out');
    assert.equal(more.length, 0, 'no version of it is listed');
    assert.equal(entry?.state, 'UNAVAILABLE');
    assert.match(entry!.reason, /model folder 'linked-out' leads outside the model repository \(to '.*outside\/mlp'\)/);
    await expectStatus(unary(ts.client, 'Predict', predictRequest('linked-out')), grpc.status.UNAVAILABLE, ESCAPE);
  });

  test('a version folder or model file symlinked out of the repository keeps that version UNAVAILABLE; the other version serves', async () => {
    for (const [model, what] of [['file-out', "model file '2/model.onnx'"], ['version-out', "version folder '2'"]]) {
      await v2Call(v2, 'RepositoryModelLoad', { model_name: model });
      const index = await indexOf(model!);
      assert.deepEqual(index.map((v) => [v.version, v.state]), [['2', 'UNAVAILABLE'], ['1', 'READY']], model);
      assert.match(index[0]!.reason, new RegExp(`${what} leads outside the model repository`));
      await expectStatus(unary(ts.client, 'Predict', predictRequest(model!, '2')), grpc.status.UNAVAILABLE, ESCAPE);
      assert.equal((await unary(ts.client, 'Predict', predictRequest(model!))).version, '1');
    }
  });

  test('a config, a vocabulary, a warm-up file or a tokenizer outside the repository (symlink, .. or absolute) makes the model UNAVAILABLE, naming the path', async () => {
    const cases: [string, RegExp][] = [
      ['config-out', /config file 'config\.yaml' leads outside the model repository/],
      ['pbtxt-out', /config file 'config\.pbtxt' leads outside the model repository/],
      ['vocab-out', /text_pipeline\.tokenizer\.vocab '\.\.\/\.\.\/outside\/vocab\.json' leads outside the model repository/],
      ['vocab-abs', /text_pipeline\.tokenizer\.vocab '\/.*\/outside\/vocab\.json' is an absolute path; paths in a model's config are relative to its model folder/],
      ['warmup-out', /warm-up file 'data\/input\.bin' leads outside the model repository/],
      ['tokenizer-out', /generation file 'tokenizer\.json' leads outside the model repository/],
    ];
    // Every case is tried and every wrong outcome listed, so one failure does not hide the others.
    const wrong: string[] = [];
    for (const [model, reason] of cases) {
      try {
        await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: model }), grpc.status.FAILED_PRECONDITION, reason);
        const index = await indexOf(model);
        assert.ok(index.length > 0 && index.every((v) => v.state === 'UNAVAILABLE' && reason.test(v.reason)), JSON.stringify(index));
      } catch (err) {
        wrong.push(`${model}: ${(err as Error).message}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('symlinks that stay inside the repository keep working: model folder, config, version folder, model file', async () => {
    const reference = (await unary(ts.client, 'Predict', predictRequest('mlp'))).outputs[0].data as Buffer;
    await v2Call(v2, 'RepositoryModelLoad', { model_name: 'alias' });
    await v2Call(v2, 'RepositoryModelLoad', { model_name: 'inside' });
    assert.deepEqual((await indexOf('inside')).map((v) => [v.version, v.state]), [['2', 'READY'], ['1', 'READY']]);
    for (const [model, version] of [['alias', '1'], ['inside', '1'], ['inside', '2']] as const) {
      const res = await unary(ts.client, 'Predict', predictRequest(model, version));
      assert.ok(Buffer.compare(res.outputs[0].data, reference) === 0, `${model} v${version} answers as mlp does`);
    }
  });

  test('sha256: right -> READY and byte-identical; a tampered byte -> that version UNAVAILABLE while the other serves; fixed -> READY again', async () => {
    const reference = (await unary(ts.client, 'Predict', predictRequest('mlp'))).outputs[0].data as Buffer;
    const answer = async (version: string) => (await unary(ts.client, 'Predict', predictRequest('signed', version))).outputs[0].data as Buffer;
    await v2Call(v2, 'RepositoryModelLoad', { model_name: 'signed' });
    assert.deepEqual((await indexOf('signed')).map((v) => [v.version, v.state]), [['2', 'READY'], ['1', 'READY']]);
    assert.ok(Buffer.compare(await answer('1'), reference) === 0 && Buffer.compare(await answer('2'), reference) === 0);

    // One bit of one weight flipped: still a valid ONNX file (the unsigned control below loads it), but not the one signed.
    const file = path.join(repo, 'signed', '2', 'model.onnx');
    const original = fs.readFileSync(file);
    const tampered = Buffer.from(original);
    tampered[tampered.length >> 1]! ^= 1;
    fs.writeFileSync(file, tampered);
    const want = sha256Of(MLP_FILE);
    const has = createHash('sha256').update(tampered).digest('hex');
    const mismatch = `model.onnx of version 2 does not match its sha256: config says ${want}, the file has ${has}`;

    // A reload sees it: the new load of version 2 is refused and its previous (verified) load keeps serving.
    await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: 'signed' }), grpc.status.FAILED_PRECONDITION, /the reload of model 'signed' failed \(version 2: model\.onnx of version 2 does not match its sha256/);
    assert.ok(Buffer.compare(await answer('2'), reference) === 0);

    // A fresh load: version 2 is UNAVAILABLE with the mismatch, never given to ONNX Runtime; version 1 serves.
    await v2Call(v2, 'RepositoryModelUnload', { model_name: 'signed' });
    await v2Call(v2, 'RepositoryModelLoad', { model_name: 'signed' });
    const index = await indexOf('signed');
    assert.deepEqual(index.map((v) => [v.version, v.state, v.reason]), [['2', 'UNAVAILABLE', mismatch], ['1', 'READY', '']]);
    await expectStatus(unary(ts.client, 'Predict', predictRequest('signed', '2')), grpc.status.UNAVAILABLE, /does not match its sha256/);
    assert.ok(Buffer.compare(await answer(''), reference) === 0, 'a request without a version gets version 1');

    // The control: the same tampered bytes without a sha256 load and serve (different answers): the check is what refused them.
    fs.writeFileSync(path.join(repo, 'unsigned', '1', 'model.onnx'), tampered);
    await v2Call(v2, 'RepositoryModelLoad', { model_name: 'unsigned' });
    assert.equal((await unary(ts.client, 'Predict', predictRequest('unsigned'))).version, '1');

    // The file restored: a reload (as `tensorgate models reload` or a poll scan makes) checks again and serves it.
    fs.writeFileSync(file, original);
    await v2Call(v2, 'RepositoryModelLoad', { model_name: 'signed' });
    assert.deepEqual((await indexOf('signed')).map((v) => [v.version, v.state]), [['2', 'READY'], ['1', 'READY']]);
    assert.ok(Buffer.compare(await answer('2'), reference) === 0);
  });

  test('a malformed sha256 in config.yaml is a config error naming the field', async () => {
    await expectStatus(v2Call(v2, 'RepositoryModelLoad', { model_name: 'bad-sha' }), grpc.status.FAILED_PRECONDITION, /invalid config\.yaml: versions\.1\.sha256: .*64 hex digits/);
  });

  test('`tensorgate models hash PATH` prints the config.yaml snippet with each version\'s sha256', async () => {
    const res = await cli(['models', 'hash', path.join(repo, 'signed')]);
    assert.equal(res.code, 0, res.stderr);
    const snippet = parseYaml(res.stdout) as { versions: Record<string, { sha256: string }> };
    assert.deepEqual(snippet, { versions: { '1': { sha256: sha256Of(MLP_FILE) }, '2': { sha256: sha256Of(MLP_FILE) } } });
  });
});

test('a scanned repository (mode none) lists a model folder symlinked out of it as UNAVAILABLE, and serves the rest', async () => {
  const base = tempDir('model-files-scan');
  let ts: TestServer | undefined;
  try {
    const repo = path.join(base.dir, 'repo');
    fs.mkdirSync(repo);
    copyBundledModel(repo, 'mlp');
    mlpModel(path.join(base.dir, 'elsewhere'), [1]);
    fs.symlinkSync(path.join(base.dir, 'elsewhere'), path.join(repo, 'linked-out'));
    ts = await startTestServer({ modelRepository: repo, workers: 1 });
    const models = ts.server.repository.list();
    assert.deepEqual(models.map((m) => [m.name, m.versions.map((v) => v.state).join(',')]), [['linked-out', ''], ['mlp', 'READY']]);
    assert.match(models[0]!.reason, ESCAPE);
  } finally {
    await ts?.close();
    base.cleanup();
  }
});

test('poll mode checks again: a tampered signed file is refused on the rescan (its previous load keeps serving) and a folder linked out appears UNAVAILABLE', async () => {
  const base = tempDir('model-files-poll');
  let ts: TestServer | undefined;
  // The server's own poller scans on a timer; this one over the same repository is driven by scan() calls, so nothing waits for time.
  let poller: RepositoryPoller | undefined;
  try {
    const repo = path.join(base.dir, 'repo');
    mlpModel(path.join(repo, 'signed'), [1], `versions:\n  "1": { sha256: "${sha256Of(MLP_FILE)}" }\n`);
    mlpModel(path.join(base.dir, 'elsewhere'), [1]);
    ts = await startTestServer({ modelRepository: repo, workers: 1 });
    poller = new RepositoryPoller(ts.server.repository, 3_600_000, createLogger('silent'));
    await poller.start();

    const file = path.join(repo, 'signed', '1', 'model.onnx');
    const tampered = fs.readFileSync(file);
    tampered[tampered.length >> 1]! ^= 1;
    fs.writeFileSync(file, tampered);
    fs.symlinkSync(path.join(base.dir, 'elsewhere'), path.join(repo, 'linked-out'));
    await poller.scan();

    const signed = ts.server.repository.get('signed')!;
    assert.deepEqual(signed.versions.map((v) => v.state), ['READY'], 'the verified load keeps serving');
    assert.match(signed.versions[0]!.reason, /a reload failed \(version 1: model\.onnx of version 1 does not match its sha256: config says [0-9a-f]{64}, the file has [0-9a-f]{64}\)/);
    const linked = ts.server.repository.get('linked-out')!;
    assert.deepEqual(linked.versions, []);
    assert.match(linked.reason, /model folder 'linked-out' leads outside the model repository/);
  } finally {
    await poller?.stop();
    await ts?.close();
    base.cleanup();
  }
});
