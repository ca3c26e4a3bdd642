/**
 * Cross-language clients against a real tensorgate server (ephemeral port, bundled models):
 * - Python: message classes from `protoc --python_out`, hand-written unary stubs (test/python/predict_client.py),
 *   run with Debian's /usr/bin/python3 + python3-grpcio + python3-protobuf;
 * - buf curl through server reflection (no .proto files on the client side);
 * - the `tensorgate` CLI in its client role (a separate Node process).
 *
 * Every external process runs through execFile with a generous timeout (slow 2-core CI machines); no sleeps,
 * no timing asserts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { f32Tensor, float32s, PACKAGE_ROOT, startTestServer, tempDir, unary, type TestServer } from './common';
import { ok, parseJson, PYTHON, pythonEnv, requirePythonToolchain, run } from './python-toolchain';

const BUF = path.join(PACKAGE_ROOT, 'node_modules', '.bin', 'buf');
const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
const PROTO_DIR = path.join(PACKAGE_ROOT, 'proto');
const PY_CLIENT = path.join(PACKAGE_ROOT, 'test', 'python', 'predict_client.py');
const BUNDLED = ['convnet', 'mlp', 'sentiment', 'tiny-lm'];
const REFLECTED_METHODS = [
  ...['Predict', 'Generate', 'ListModels', 'GetModel', 'ControlCanary'].map((m) => `tensorgate.v1.ModelService/${m}`),
  ...['Check', 'Watch'].map((m) => `grpc.health.v1.Health/${m}`),
];

let ts: TestServer;
let tmp: { dir: string; cleanup: () => void };
let bufEnv: NodeJS.ProcessEnv;

before(async () => {
  tmp = tempDir('cross-language');
  // buf keeps a cache under $HOME by default; keep it in the temp folder so the test leaves nothing behind.
  bufEnv = { ...process.env, BUF_CACHE_DIR: path.join(tmp.dir, 'buf-cache') };
  ts = await startTestServer();
});

after(async () => {
  await ts?.close();
  tmp?.cleanup();
});

// ---------------------------------------------------------------------------------------------- Python

test('Python client (protoc --python_out + grpcio) calls Predict and ListModels', async () => {
  await requirePythonToolchain();
  const stubs = path.join(tmp.dir, 'python-stubs');
  fs.mkdirSync(stubs);
  await ok('protoc', [`--proto_path=${PROTO_DIR}`, `--python_out=${stubs}`, path.join(PROTO_DIR, 'tensorgate/v1/model_service.proto')]);
  assert.ok(fs.existsSync(path.join(stubs, 'tensorgate/v1/model_service_pb2.py')), 'protoc wrote tensorgate/v1/model_service_pb2.py');

  const out = parseJson(await ok(PYTHON, [PY_CLIENT, '--address', ts.address, '--stubs', stubs], pythonEnv()), 'predict_client.py');

  assert.equal(out.sentiment.output_text, 'positive');
  assert.ok(out.sentiment.confidence > 0.9, `confidence ${out.sentiment.confidence}`);
  assert.deepEqual(
    out.sentiment.labels.map((l: { label: string }) => l.label),
    ['negative', 'positive'],
  );

  assert.equal(out.mlp.name, 'logits');
  assert.equal(out.mlp.dtype, 'FP32');
  assert.deepEqual(out.mlp.shape, [1, 10]);
  // Same request through the Node client: the bytes Python packed and unpacked must mean the same floats.
  const node = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], new Float32Array(64))] });
  assert.deepEqual(out.mlp.values, Array.from(float32s(node.outputs[0].data)));

  const names = out.models.map((m: { name: string }) => m.name);
  for (const name of BUNDLED) assert.ok(names.includes(name), `ListModels from Python lacks ${name}: ${names.join(', ')}`);
  for (const m of out.models) assert.deepEqual(m.versions, [{ version: '1', state: 'READY' }], `${m.name} versions`);
});

// ---------------------------------------------------------------------------------------------- buf curl

function bufCurl(args: string[]): Promise<string> {
  return ok(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', ...args], bufEnv);
}

test('buf curl lists the ModelService and Health methods through reflection', async () => {
  const methods = (await bufCurl(['--list-methods', `http://${ts.address}`])).split('\n').map((l) => l.trim());
  for (const m of REFLECTED_METHODS) assert.ok(methods.includes(m), `--list-methods lacks ${m}:\n${methods.join('\n')}`);
});

test('buf curl calls Predict on sentiment through reflection (JSON in, JSON out)', async () => {
  const res = parseJson(
    await bufCurl([`http://${ts.address}/tensorgate.v1.ModelService/Predict`, '-d', JSON.stringify({ model: 'sentiment', input_text: 'I love this' })]),
    'buf curl Predict',
  );
  // buf prints proto3 JSON: lowerCamelCase names, int64 as strings, bytes as base64.
  assert.equal(res.outputText, 'positive');
  assert.ok(res.confidence > 0.9, `confidence ${res.confidence}`);
  assert.equal(res.model, 'sentiment');
  assert.equal(res.version, '1');
  assert.ok(res.requestId, 'the server fills request_id');
});

test('buf curl calls Predict on mlp with an FP32 tensor given as base64 bytes', async () => {
  const request = { model: 'mlp', inputs: [{ name: 'input', dtype: 'FP32', shape: [1, 64], data: Buffer.alloc(64 * 4).toString('base64') }] };
  const res = parseJson(await bufCurl([`http://${ts.address}/tensorgate.v1.ModelService/Predict`, '-d', JSON.stringify(request)]), 'buf curl Predict mlp');
  assert.equal(res.outputs.length, 1);
  assert.equal(res.outputs[0].dtype, 'FP32');
  assert.deepEqual(res.outputs[0].shape, ['1', '10']);
  assert.equal(Buffer.from(res.outputs[0].data, 'base64').length, 10 * 4);
});

test('buf curl calls ListModels through reflection', async () => {
  const res = parseJson(await bufCurl([`http://${ts.address}/tensorgate.v1.ModelService/ListModels`, '-d', '{}']), 'buf curl ListModels');
  const names = res.models.map((m: { name: string }) => m.name);
  for (const name of BUNDLED) assert.ok(names.includes(name), `ListModels lacks ${name}: ${names.join(', ')}`);
  for (const m of res.models) assert.equal(m.versions[0].state, 'READY', `${m.name}`);
});

test('buf curl calls grpc.health.v1.Health/Check through reflection', async () => {
  const url = `http://${ts.address}/grpc.health.v1.Health/Check`;
  for (const service of ['', 'tensorgate.v1.ModelService']) {
    const res = parseJson(await bufCurl([url, '-d', JSON.stringify({ service })]), `buf curl Health/Check "${service}"`);
    assert.equal(res.status, 'SERVING', `health of "${service}"`);
  }
});

test('the health service answers clients built from the upstream grpc.health.v1 proto', async () => {
  // Reflection serves the server's own copy of health.proto; a client holding the canonical file (here the one
  // grpc-health-check ships, reflection off) must still be able to call it.
  const res = parseJson(
    await bufCurl(['--schema', healthProtoPath, '--reflect=false', `http://${ts.address}/grpc.health.v1.Health/Check`, '-d', '{}']),
    'buf curl Health/Check --schema',
  );
  assert.equal(res.status, 'SERVING');
});

// ---------------------------------------------------------------------------------------------- tensorgate CLI

test('tensorgate predict --text prints the JSON answer', async () => {
  const out = parseJson(
    await ok(process.execPath, [CLI, 'predict', '--address', ts.address, '--model', 'sentiment', '--text', 'I hate this awful thing']),
    'tensorgate predict',
  );
  assert.equal(out.model, 'sentiment');
  assert.equal(out.output_text, 'negative');
  assert.ok(out.confidence > 0.9, `confidence ${out.confidence}`);
  assert.deepEqual(out.outputs[0].shape, [1, 2]);
});

test('tensorgate predict --input sends a JSON tensor', async () => {
  const input = JSON.stringify({ name: 'input', dtype: 'FP32', shape: [1, 64], values: new Array(64).fill(0) });
  const out = parseJson(await ok(process.execPath, [CLI, 'predict', '--address', ts.address, '--model', 'mlp', '--input', input]), 'tensorgate predict');
  assert.equal(out.outputs[0].name, 'logits');
  assert.deepEqual(out.outputs[0].shape, [1, 10]);
  assert.equal(out.outputs[0].values.length, 10);
});

test('tensorgate models lists the bundled models', async () => {
  const out = await ok(process.execPath, [CLI, 'models', '--address', ts.address]);
  for (const name of BUNDLED) assert.match(out, new RegExp(`^${name}\\s+v1 READY$`, 'm'));
});

test('tensorgate predict on an unknown model exits 2 with the gRPC error on stderr', async () => {
  const r = await run(process.execPath, [CLI, 'predict', '--address', ts.address, '--model', 'no-such-model', '--text', 'hi']);
  assert.equal(r.code, 2, `exit ${r.code}, stderr: ${r.stderr}`);
  assert.match(r.stderr, /^tensorgate: .*no-such-model/);
  assert.equal(r.stdout, '');
});
