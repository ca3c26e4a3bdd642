/**
 * The v2 gRPC protocol from an independently generated client: Python message classes from
 * `protoc --python_out` on proto/inference/*.proto, grpcio stubs written in test/python/v2_client.py (Debian's
 * python3-grpcio + python3-protobuf + protobuf-compiler). The script checks every dtype raw and typed through
 * an identity model per dtype, and reports metadata, readiness, config, statistics, a stream with one
 * failing request, and error codes for this test to compare.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { addModel, copyBundledModel, PACKAGE_ROOT, startTestServer, tempDir, type TestServer } from './common';
import { IDENTITY_DTYPES, identityModelOf } from './fixtures/onnx-fixtures';
import { ok, parseJson, PYTHON, pythonEnv, requirePythonToolchain } from './python-toolchain';

const PROTO_DIR = path.join(PACKAGE_ROOT, 'proto');
const PY_CLIENT = path.join(PACKAGE_ROOT, 'test', 'python', 'v2_client.py');

let ts: TestServer;
let tmp: ReturnType<typeof tempDir>;

before(async () => {
  tmp = tempDir('v2-python');
  const repo = path.join(tmp.dir, 'models');
  copyBundledModel(repo, 'mlp');
  for (const dtype of IDENTITY_DTYPES) addModel(repo, `identity_${dtype}`, undefined, { 1: identityModelOf(dtype) });
  ts = await startTestServer({ modelRepository: repo });
});

after(async () => {
  await ts?.close();
  tmp?.cleanup();
});

test('a Python client generated from our v2 proto: every dtype raw and typed, metadata, config, statistics, streaming, errors', async () => {
  await requirePythonToolchain();
  const stubs = path.join(tmp.dir, 'stubs');
  fs.mkdirSync(stubs);
  const protos = ['inference/grpc_service.proto', 'inference/model_config.proto'].map((p) => path.join(PROTO_DIR, p));
  await ok('protoc', [`--proto_path=${PROTO_DIR}`, `--python_out=${stubs}`, ...protos]);
  const out = parseJson(await ok(PYTHON, [PY_CLIENT, '--address', ts.address, '--stubs', stubs], pythonEnv()), 'v2_client.py');

  assert.equal(out.server.name, 'tensorgate');
  assert.deepEqual(out.dtypes, ['BOOL', 'BYTES', 'FP16', 'FP32', 'FP64', 'INT16', 'INT32', 'INT64', 'INT8', 'UINT16', 'UINT32', 'UINT64', 'UINT8']);
  assert.deepEqual(out.metadata, {
    name: 'mlp',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [['input', 'FP32', [-1, 64]]],
    outputs: [['logits', 'FP32', [-1, 10]]],
  });
  assert.deepEqual(out.ready, [true, false]);
  // data_type 11 is TYPE_FP32 in Triton's enum: the numbers are the public proto's.
  assert.deepEqual(out.config, { name: 'mlp', platform: 'onnxruntime_onnx', max_batch_size: 256, input: [['input', 11, [64]]] });
  assert.equal(out.stats_success_delta, 5);
  assert.deepEqual(out.stream.ids, ['s0', 's1', 's2']);
  assert.equal(out.stream.errors.length, 1);
  assert.match(out.stream.errors[0], /input 'input': dim 1 is 63, the model expects 64/);
  assert.equal(out.errors.unknown_model[0], 'NOT_FOUND');
  assert.match(out.errors.unknown_model[1], /model 'nope' not found/);
  assert.equal(out.errors.mixed_contents[0], 'INVALID_ARGUMENT');
  assert.match(out.errors.mixed_contents[1], /typed contents while raw_input_contents is set/);
});
