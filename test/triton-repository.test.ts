/**
 * A Triton model repository served as it is: config.pbtxt folders (made from the bundled mlp and convnet, written
 * the way Triton users write them) next to the same models under config.yaml, one real server, real grpc-js
 * client. Also: a Triton-only field is reported (GetModel warnings or reason), a folder with both files is
 * UNAVAILABLE, and `tensorgate models convert` output is a config.yaml that validates and loads.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { modelConfigSchema } from '../src/repository/model-config';
import { BUNDLED_MODELS_DIR, copyBundledModel, f32Tensor, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';
import { cli, type CliResult } from './cli-process';
import { createInferenceClient, v2Call } from '../src/client/inference-client';

const MLP_PBTXT = `# Triton model configuration for the bundled mlp
name: "mlp_triton"
platform: "onnxruntime_onnx"
max_batch_size: 256
input [
  {
    name: "input"
    data_type: TYPE_FP32
    dims: [ 64 ]
  }
]
output [
  {
    name: "logits"
    data_type: TYPE_FP32
    dims: [ 10 ]
  }
]
dynamic_batching {
  max_queue_delay_microseconds: 100
}
instance_group [
  {
    count: 1
    kind: KIND_CPU
  }
]
response_cache {
  enable: true
}
`;

const CONVNET_PBTXT = `name: "convnet_triton"
backend: "onnxruntime"
max_batch_size: 32
input [ { name: "image", data_type: TYPE_FP32, format: FORMAT_NCHW, dims: [ 3, 32, 32 ] } ]
output [ { name: "logits", data_type: TYPE_FP32, dims: [ 10 ] } ]
dynamic_batching { preferred_batch_size: [ 8, 16 ] max_queue_delay_microseconds: 200 }
instance_group [ { count: 1 kind: KIND_CPU } ]
version_policy: { latest: { num_versions: 1 } }
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
optimization { graph { level: 1 } execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }
`;

let ts: TestServer;
let repo: { dir: string; cleanup: () => void };
let converted: CliResult;
let refused: CliResult;

/** A Triton-style folder: config.pbtxt and 1/model.onnx copied from a bundled model. */
function tritonModel(name: string, from: string, pbtxt: string): string {
  const dir = path.join(repo.dir, name);
  fs.mkdirSync(path.join(dir, '1'), { recursive: true });
  fs.copyFileSync(path.join(BUNDLED_MODELS_DIR, from, '1', 'model.onnx'), path.join(dir, '1', 'model.onnx'));
  fs.writeFileSync(path.join(dir, 'config.pbtxt'), pbtxt);
  return dir;
}

before(async () => {
  repo = tempDir('triton');
  copyBundledModel(repo.dir, 'mlp');
  copyBundledModel(repo.dir, 'convnet');
  const mlpDir = tritonModel('mlp_triton', 'mlp', MLP_PBTXT);
  tritonModel('convnet_triton', 'convnet', CONVNET_PBTXT);
  tritonModel('stateful', 'mlp', MLP_PBTXT.replace('mlp_triton', 'stateful').replace(/dynamic_batching \{[^}]*\}/, 'sequence_batching { max_sequence_idle_microseconds: 5000000 }'));
  tritonModel('typo', 'mlp', 'name: "typo"\nmax_batch_size: 8\ninput [\n  { name: "input" data_type: TYPE_FP32 dimz: [ 64 ] }\n]\n');
  const both = tritonModel('both', 'mlp', MLP_PBTXT.replace('mlp_triton', 'both'));
  fs.copyFileSync(path.join(BUNDLED_MODELS_DIR, 'mlp', 'config.yaml'), path.join(both, 'config.yaml'));

  // The converted config.yaml, served next to the config.pbtxt it came from.
  converted = await cli(['models', 'convert', mlpDir]);
  const convertedDir = path.join(repo.dir, 'mlp_converted');
  fs.mkdirSync(path.join(convertedDir, '1'), { recursive: true });
  fs.copyFileSync(path.join(mlpDir, '1', 'model.onnx'), path.join(convertedDir, '1', 'model.onnx'));
  fs.writeFileSync(path.join(convertedDir, 'config.yaml'), converted.stdout.replace('name: mlp_triton', 'name: mlp_converted'));
  refused = await cli(['models', 'convert', path.join(repo.dir, 'stateful', 'config.pbtxt')]);

  ts = await startTestServer({ modelRepository: repo.dir });
});

after(async () => {
  await ts?.close();
  repo?.cleanup();
});

const getModel = (name: string) => unary(ts.client, 'GetModel', { model: name });

test('config.pbtxt models load READY with the shapes, batching and caching their Triton config says', async () => {
  const mlp = await getModel('mlp_triton');
  assert.equal(mlp.reason, '');
  assert.deepEqual(mlp.versions.map((v: { version: string; state: string }) => [v.version, v.state]), [['1', 'READY']]);
  assert.deepEqual(mlp.warnings, []);
  const config = JSON.parse(mlp.config_json);
  assert.equal(config.max_batch_size, 256);
  assert.deepEqual(config.inputs, [{ name: 'input', dtype: 'FP32', shape: [-1, 64] }]);
  assert.deepEqual(config.dynamic_batching, { preferred_batch_sizes: [], max_queue_delay_us: 100 });
  assert.equal(config.instance_count, 1);
  assert.equal(config.deterministic, true);

  const convnet = await getModel('convnet_triton');
  assert.deepEqual(convnet.versions.map((v: { state: string }) => v.state), ['READY']);
  assert.equal(convnet.session.intra_op_threads, 1);
  assert.equal(JSON.parse(convnet.config_json).deterministic, false, 'no response_cache: no caching, as in Triton');
});

test('Predict through a config.pbtxt model is byte-identical to the same model under config.yaml', async () => {
  const rows = 5;
  const input = f32Tensor('input', [rows, 64], seededFloats(rows * 64, 7));
  const [yaml, pbtxt] = await Promise.all([
    unary(ts.client, 'Predict', { model: 'mlp', inputs: [input] }),
    unary(ts.client, 'Predict', { model: 'mlp_triton', inputs: [input] }),
  ]);
  assert.deepEqual(pbtxt.outputs[0].shape.map(Number), [rows, 10]);
  assert.deepEqual(Buffer.from(pbtxt.outputs[0].data), Buffer.from(yaml.outputs[0].data));

  const image = f32Tensor('image', [3, 3, 32, 32], seededFloats(3 * 3 * 32 * 32, 11));
  const [cy, cp] = await Promise.all([
    unary(ts.client, 'Predict', { model: 'convnet', inputs: [image] }),
    unary(ts.client, 'Predict', { model: 'convnet_triton', inputs: [image] }),
  ]);
  assert.deepEqual(cp.outputs[0].shape.map(Number), [3, 10]);
  assert.deepEqual(Buffer.from(cp.outputs[0].data), Buffer.from(cy.outputs[0].data));
});

test('a v2 client sees the config.pbtxt model as Triton would: ModelInfer answers as Predict does, ModelConfig gives its config back', async () => {
  const v2 = createInferenceClient(ts.address);
  try {
    const data = Buffer.from(seededFloats(2 * 64, 5).buffer);
    const [predicted, inferred] = await Promise.all([
      unary(ts.client, 'Predict', { model: 'mlp', inputs: [{ name: 'input', dtype: 'FP32', shape: [2, 64], data }] }),
      v2Call(v2, 'ModelInfer', { model_name: 'mlp_triton', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 64] }], raw_input_contents: [data] }),
    ]);
    assert.deepEqual(Buffer.from(inferred.raw_output_contents[0]), Buffer.from(predicted.outputs[0].data));
    const { config } = await v2Call(v2, 'ModelConfig', { name: 'mlp_triton' });
    assert.equal(config.name, 'mlp_triton');
    assert.equal(config.platform, 'onnxruntime_onnx');
    assert.equal(config.max_batch_size, 256);
    assert.deepEqual(config.input.map((t: any) => [t.name, t.data_type, t.dims]), [['input', 'TYPE_FP32', [64]]]);
    assert.deepEqual(config.output.map((t: any) => [t.name, t.data_type, t.dims]), [['logits', 'TYPE_FP32', [10]]]);
    assert.equal(config.dynamic_batching.max_queue_delay_microseconds, 100);
    assert.deepEqual(config.instance_group.map((g: any) => [g.count, g.kind]), [[1, 'KIND_CPU']]);
    assert.equal(config.response_cache.enable, true);
  } finally {
    v2.close();
  }
});

test('a Triton field tensorgate ignores is a GetModel warning; one it cannot honour is the reason the model is UNAVAILABLE', async () => {
  const convnet = await getModel('convnet_triton');
  assert.ok(convnet.warnings.some((w: string) => /^optimization is ignored/.test(w)), convnet.warnings.join('\n'));
  assert.ok(convnet.warnings.some((w: string) => /input 'image': format FORMAT_NCHW is not kept/.test(w)), convnet.warnings.join('\n'));

  const stateful = await getModel('stateful');
  assert.match(stateful.reason, /^config\.pbtxt cannot be served: sequence_batching is not supported: stateful sequence models/);
  assert.deepEqual(stateful.versions.map((v: { state: string }) => v.state), ['UNAVAILABLE']);

  const typo = await getModel('typo');
  assert.equal(typo.reason, "invalid config.pbtxt: unknown field 'dimz' in ModelInput at config.pbtxt:4:40 (did you mean 'dims'?)");
});

test('a folder with both config.yaml and config.pbtxt is UNAVAILABLE, saying to keep one', async () => {
  const both = await getModel('both');
  assert.match(both.reason, /both config\.yaml and config\.pbtxt are present: keep one/);
  assert.deepEqual(both.versions.map((v: { state: string; reason: string }) => [v.state, v.reason]), [['UNAVAILABLE', both.reason]]);
  // The rest of the repository is served regardless.
  await unary(ts.client, 'Predict', { model: 'mlp_triton', inputs: [f32Tensor('input', [1, 64], new Float32Array(64))] });
});

test('tensorgate models convert prints a config.yaml that validates and loads; problems go to stderr with exit 1', async () => {
  assert.equal(converted.code, 0, converted.stderr);
  assert.match(converted.stdout, /^# config\.yaml converted from .*config\.pbtxt by `tensorgate models convert`\./);
  const parsed = modelConfigSchema.safeParse(parseYaml(converted.stdout));
  assert.ok(parsed.success, parsed.success ? '' : parsed.error.message);
  assert.equal(parsed.data.max_batch_size, 256);
  assert.deepEqual(parsed.data.outputs, [{ name: 'logits', dtype: 'FP32', shape: [-1, 10] }]);

  const loaded = await getModel('mlp_converted');
  assert.deepEqual(loaded.versions.map((v: { state: string }) => v.state), ['READY']);
  const input = f32Tensor('input', [2, 64], seededFloats(128, 3));
  const [a, b] = await Promise.all([
    unary(ts.client, 'Predict', { model: 'mlp_converted', inputs: [input] }),
    unary(ts.client, 'Predict', { model: 'mlp_triton', inputs: [input] }),
  ]);
  assert.deepEqual(Buffer.from(a.outputs[0].data), Buffer.from(b.outputs[0].data));

  assert.equal(refused.code, 1);
  assert.equal(refused.stdout, '');
  assert.match(refused.stderr, /stateful[/\\]config\.pbtxt cannot be served by tensorgate:\n {2}- sequence_batching is not supported/);
});

test('tensorgate models convert warns in comments, and refuses a folder that does not exist', async () => {
  const res = await cli(['models', 'convert', path.join(repo.dir, 'convnet_triton')]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^# Warnings: Triton settings not honoured, or honoured differently:\n#   - optimization is ignored/m);
  assert.ok(modelConfigSchema.safeParse(parseYaml(res.stdout)).success);
  const missing = await cli(['models', 'convert', path.join(repo.dir, 'nope')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read '.*nope'/);
});
