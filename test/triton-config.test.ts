/**
 * Triton config.pbtxt without a server: the text-format parser (against our ModelConfig schema and a small
 * test schema for the scalar types ModelConfig lacks), and the mapping to and from tensorgate's config.
 * The repository end to end is test/triton-repository.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as protobuf from 'protobufjs';
import { modelConfigSchema } from '../src/repository/model-config';
import { parsePbtxt } from '../src/repository/triton/pbtxt';
import { convertTritonConfig, tritonConfigFromModel, type TritonModelConfig } from '../src/repository/triton/triton-config';
import { parseTritonConfigText } from '../src/repository/triton/triton-schema';

const parse = (text: string) => parseTritonConfigText(text);
const parseError = (text: string): string => {
  try {
    parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a parse error');
};

test('pbtxt: comments, both list styles, nested messages, enums by name and number, separators', () => {
  const { message, unsupported } = parse(`
# Triton-style config
name: "resnet"   # trailing comment
platform: "onnxruntime_onnx";
max_batch_size: 8,
input [
  { name: "x", data_type: TYPE_FP32, format: FORMAT_NCHW, dims: [ 3, -1, 0x10 ] },
  { name: "mask" data_type: 9 dims: 1 dims: 2 }
]
output: { name: "y" data_type: TYPE_FP16 dims: [] }
output < name: "z" data_type: TYPE_BOOL dims: [ 1 ] >
version_policy: { latest: { num_versions: 2 } }
instance_group [ { count: 2 kind: KIND_CPU } ]
response_cache { enable: True }
`);
  assert.deepEqual(unsupported, []);
  assert.deepEqual(message, {
    name: 'resnet',
    platform: 'onnxruntime_onnx',
    max_batch_size: 8,
    input: [
      { name: 'x', data_type: 'TYPE_FP32', format: 'FORMAT_NCHW', dims: [3, -1, 16] },
      { name: 'mask', data_type: 'TYPE_INT64', dims: [1, 2] },
    ],
    // A repeated field written once is still an array: the schema says so.
    output: [{ name: 'y', data_type: 'TYPE_FP16', dims: [] }, { name: 'z', data_type: 'TYPE_BOOL', dims: [1] }],
    version_policy: { latest: { num_versions: 2 } },
    instance_group: [{ count: 2, kind: 'KIND_CPU' }],
    response_cache: { enable: true },
  });
});

test('pbtxt: strings with escapes, single quotes and adjacent literals; maps as key/value entries', () => {
  const { message } = parse(String.raw`
name: 'a' "b" 'c\'s' "\t\x41\101\u00e9\U0001F600"
parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
parameters: [ { key: 'execution_mode', value { string_value: "1" } }, < key: "k" > ]
dynamic_batching { priority_levels: 2 priority_queue_policy { key: 2 value { timeout_action: DELAY max_queue_size: 0 } } }
model_warmup [ { name: "w" batch_size: 1 inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } } ]
`);
  assert.equal(message.name, "abc's\tAAé😀");
  assert.deepEqual(message.parameters, { intra_op_thread_count: { string_value: '2' }, execution_mode: { string_value: '1' }, k: {} });
  assert.deepEqual(message.dynamic_batching, { priority_levels: 2, priority_queue_policy: { 2: { timeout_action: 'DELAY', max_queue_size: 0 } } });
  assert.deepEqual(message.model_warmup, [{ name: 'w', batch_size: 1, inputs: { x: { data_type: 'TYPE_FP32', dims: [4], zero_data: true } } }]);
});

test('pbtxt: scalar types ModelConfig lacks (floats with inf/nan, bool spellings, octal, unsigned) on a test schema', () => {
  const root = protobuf.parse(
    'syntax = "proto3"; message T { float f = 1; repeated double d = 2; repeated bool b = 3; int32 i = 4; uint32 u = 5; bytes raw = 6; map<int32, string> m = 7; }',
    { keepCase: true },
  ).root;
  root.resolveAll();
  const type = root.lookupType('T');
  const { message } = parsePbtxt('f: 1.5f d: [-inf, nan, 1e3, .5, -2] b: [t, f, true, False, 1, 0] i: -012 u: 4294967295 raw: "\\001" m { key: -1 value: "x" }', type);
  assert.equal(message.f, 1.5);
  assert.deepEqual((message.d as number[]).slice(2), [1000, 0.5, -2]);
  assert.equal((message.d as number[])[0], -Infinity);
  assert.ok(Number.isNaN((message.d as number[])[1]));
  assert.deepEqual(message.b, [true, false, true, false, true, false]);
  assert.equal(message.i, -10);
  assert.equal(message.u, 4294967295);
  assert.equal(message.raw, '\u0001');
  assert.deepEqual(message.m, { '-1': 'x' });
  assert.throws(() => parsePbtxt('u: -1', type), /-1 is out of range for 'u' \(uint32: 0 to 4294967295\) at config\.pbtxt:1:4/);
  assert.throws(() => parsePbtxt('i: 2147483648', type), /out of range for 'i'/);
});

test('pbtxt: errors name the line and column and say what was expected', () => {
  const unknown = parseError('name: "m"\ninput [\n  { name: "x" dimz: [ 1 ] }\n]');
  assert.match(unknown, /^unknown field 'dimz' in ModelInput at config\.pbtxt:3:15 \(did you mean 'dims'\?\)$/);
  assert.match(parseError('name: "m"\n  bogus: 1'), /^unknown field 'bogus' in ModelConfig at config\.pbtxt:2:3 \(ModelConfig fields: name, platform, /);
  assert.match(parseError('max_batch_size 8'), /expected ':' after 'max_batch_size' at config\.pbtxt:1:16/);
  assert.match(parseError('max_batch_size: 1.5'), /expected an integer for 'max_batch_size', found 1\.5 at config\.pbtxt:1:17/);
  assert.match(parseError('input { data_type: TYPE_FLOAT32 }'), /unknown DataType value 'TYPE_FLOAT32' for 'data_type' \(one of TYPE_INVALID, .*\) at config\.pbtxt:1:20/);
  assert.match(parseError('name: "unterminated\n'), /unterminated string \(opened with "\) at config\.pbtxt:1:7/);
  assert.match(parseError('input {\n  name: "x"\n'), /expected a field name or '}' \(the ModelInput is not closed\) at config\.pbtxt:3:1/);
  assert.match(parseError('max_batch_size: 1\nmax_batch_size: 2'), /'max_batch_size' is set twice \(it is not a repeated field\) at config\.pbtxt:2:1/);
  assert.match(parseError('name: ["a", "b"]'), /'name' is not repeated: it takes one value, not a list at config\.pbtxt:1:7/);
  assert.match(parseError('version_policy { latest { num_versions: 1 } all { } }'), /'all' and 'latest' are both set, but policy_choice holds one of latest, all, specific at config\.pbtxt:1:45/);
  assert.match(parseError('response_cache { enable: yes }'), /expected true or false for 'enable', found 'yes' at config\.pbtxt:1:26/);
  assert.match(parseError('input { dims: [1 2] }'), /expected ',' or ']' in the list of 'dims'.* found '2' at config\.pbtxt:1:18/);
  // int64 values past 2^53 would be rounded by a JS number: refused, not misread.
  assert.match(parseError('dynamic_batching { max_queue_delay_microseconds: 18446744073709551615 }'), /beyond 2\^53 and cannot be read exactly/);
  assert.match(parseError('parameters { key: "a" value { string_value: "1" } }\nparameters { key: "a" value { string_value: "2" } }'), /key "a" appears twice in 'parameters' at config\.pbtxt:2:12/);
});

test('pbtxt: real Triton fields outside our schema are skipped and listed by path; anything else fails', () => {
  const { message, unsupported } = parse(`
name: "m"
optimization { execution_accelerators { gpu_execution_accelerator: [ { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } } ] } }
input [ { name: "a" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "b" data_type: TYPE_FP32 dims: [ 1 ] is_non_linear_format_io: true } ]
instance_group [ { count: 1 kind: KIND_GPU rate_limiter { resources [ { name: "R1" count: 4 } ] priority: 2 } } ]
model_transaction_policy { decoupled: True }
metric_tags: { key: "team" value: "vision" }
max_batch_size: 4
`);
  assert.deepEqual(unsupported, ['optimization', 'input[1].is_non_linear_format_io', 'instance_group[0].rate_limiter', 'model_transaction_policy', 'metric_tags']);
  // What follows a skipped block is still read.
  assert.equal(message.max_batch_size, 4);
  assert.deepEqual(message.instance_group, [{ count: 1, kind: 'KIND_GPU' }]);
  assert.match(parseError('input { name: "a" rate_limiter { } }'), /unknown field 'rate_limiter' in ModelInput at config\.pbtxt:1:19/);
  assert.match(parseError('optimization { graph { level: 1 }'), /expected '}' \(a skipped value is not closed\) at config\.pbtxt:1:34/);
});

const convert = (text: string, modelName = 'm') => {
  const { message, unsupported } = parse(text);
  return convertTritonConfig(message as TritonModelConfig, { modelName, unsupported });
};

test('mapping: a realistic batching config becomes the equivalent config.yaml, with every difference warned', () => {
  const c = convert(`
name: "m"
backend: "onnxruntime"
max_batch_size: 32
input [ { name: "image" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, 32, 32 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] label_filename: "labels.txt" } ]
dynamic_batching {
  preferred_batch_size: [ 8, 16 ]
  max_queue_delay_microseconds: 500
  priority_levels: 3
  default_priority_level: 2
  default_queue_policy { max_queue_size: 100 default_timeout_microseconds: 20000 allow_timeout_override: true timeout_action: DELAY }
  preserve_ordering: true
}
instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] }, { count: 1 kind: KIND_CPU } ]
version_policy { specific { versions: [ 1, 3 ] } }
response_cache { enable: true }
parameters { key: "intra_op_thread_count" value { string_value: "2" } }
parameters { key: "execution_mode" value { string_value: "1" } }
parameters { key: "enable_mem_arena" value { string_value: "1" } }
model_warmup [ { name: "zeros" batch_size: 2 count: 3 inputs { key: "image" value: { data_type: TYPE_FP32 dims: [ 3, 32, 32 ] zero_data: true } } } ]
optimization { graph { level: 1 } }
`);
  assert.deepEqual(c.problems, []);
  assert.deepEqual(c.raw, {
    name: 'm',
    max_batch_size: 32,
    inputs: [{ name: 'image', dtype: 'FP32', shape: [-1, 3, 32, 32] }],
    outputs: [{ name: 'logits', dtype: 'FP32', shape: [-1, 10] }],
    dynamic_batching: { preferred_batch_sizes: [8, 16], max_queue_delay_us: 500 },
    queue: { priority_levels: 3, default_priority: 2, max_size: 100, default_timeout_us: 20000 },
    instance_count: 5,
    version_policy: { specific: [1, 3] },
    deterministic: true,
    session: { intra_op_threads: 2, execution_mode: 'parallel' },
    // Triton's warm-up dims leave out the batch dim: batch_size rows are put in front.
    warmup: [{ name: 'zeros', count: 3, inputs: { image: { dtype: 'FP32', shape: [2, 3, 32, 32], data: 'zero' } } }],
  });
  assert.equal(c.config?.instance_count, 5);
  const expected = [/^optimization is ignored/, /format FORMAT_NCHW is not kept/, /label_filename 'labels\.txt' is ignored/, /timeout_action DELAY/, /preserve_ordering/,
    /instance_group\[0\] \(KIND_GPU, gpus \[0, 1\]\) runs as 4 CPU instance/, /'enable_mem_arena' is ignored/];
  for (const re of expected) assert.ok(c.warnings.some((w) => re.test(w)), `no warning matching ${re} in ${JSON.stringify(c.warnings)}`);
  assert.equal(c.warnings.length, expected.length, JSON.stringify(c.warnings));
});

test('mapping: no dynamic_batching, no batch dim, no response_cache -> no merging, dims as they are, no caching', () => {
  const c = convert('max_batch_size: 0 input [ { name: "x" data_type: TYPE_INT64 dims: [ -1, 4 ] } ] output [ { name: "y" data_type: TYPE_STRING dims: [ -1 ] } ]');
  assert.deepEqual(c.problems, []);
  assert.deepEqual(c.warnings, []);
  assert.deepEqual(c.raw, { max_batch_size: 0, inputs: [{ name: 'x', dtype: 'INT64', shape: [-1, 4] }], outputs: [{ name: 'y', dtype: 'STRING', shape: [-1] }], deterministic: false });
  assert.equal(c.config?.dynamic_batching, undefined);
  assert.match(convert('input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]').warnings.join(), /max_batch_size is not set: served as 0/);
});

test('mapping: what cannot be served is a problem, each one named', () => {
  const problems = (text: string, name = 'm') => convert(text, name).problems.join('\n');
  assert.match(problems('name: "other"'), /name 'other' does not match the folder name 'm'/);
  assert.match(problems('platform: "tensorrt_plan"'), /platform 'tensorrt_plan' is not served/);
  assert.match(problems('backend: "python"'), /backend 'python' is not served/);
  assert.match(problems('default_model_filename: "resnet.onnx"'), /default_model_filename 'resnet\.onnx' is not supported/);
  assert.match(problems('sequence_batching { max_sequence_idle_microseconds: 5000000 }'), /sequence_batching is not supported: stateful/);
  assert.match(problems('ensemble_scheduling { step [ { model_name: "a" model_version: -1 } ] }'), /ensemble_scheduling is not supported/);
  assert.match(problems('max_batch_size: 0 dynamic_batching { }'), /dynamic_batching needs max_batch_size > 0/);
  assert.match(problems('max_batch_size: 8 input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]'), /input 'x': reshape is not supported/);
  assert.match(problems('input [ { name: "x" dims: [ 1 ] } ]'), /input 'x': data_type is required/);
  assert.match(problems('parameters { key: "execution_mode" value { string_value: "fast" } }'), /execution_mode' must be "0" \(sequential\) or "1" \(parallel\)/);
  // The schema's own rules still apply, in our terms.
  assert.match(problems('max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 8 ] }'), /as a tensorgate config: dynamic_batching\.preferred_batch_sizes: 8 is larger than max_batch_size 4/);
  // A reshape to the same dims changes nothing, so it is accepted.
  assert.deepEqual(convert('max_batch_size: 8 input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] reshape: { shape: [ 2 ] } } ]').problems, []);
});

test('tritonConfigFromModel: a loaded model as Triton ModelConfig, dims without the batch dim; it converts back to the same config', () => {
  const config = modelConfigSchema.parse({
    max_batch_size: 32,
    dynamic_batching: { preferred_batch_sizes: [8], max_queue_delay_us: 100 },
    queue: { max_size: 64, priority_levels: 2, default_priority: 2, default_timeout_us: 5000 },
    deterministic: true,
    instance_count: 2,
    version_policy: { all: true },
    session: { intra_op_threads: 2 },
  });
  const inputs = [{ name: 'image', dtype: 'FP32' as const, shape: [-1, 3, 32, 32], dimNames: ['batch', '', '', ''] }];
  const outputs = [{ name: 'logits', dtype: 'FP32' as const, shape: [-1, 10], dimNames: ['batch', ''] }];
  const t = tritonConfigFromModel({ name: 'convnet', config, inputs, outputs });
  assert.equal(t.platform, 'onnxruntime_onnx');
  assert.equal(t.backend, 'onnxruntime');
  assert.deepEqual(t.input, [{ name: 'image', data_type: 'TYPE_FP32', dims: [3, 32, 32] }]);
  assert.deepEqual(t.output, [{ name: 'logits', data_type: 'TYPE_FP32', dims: [10] }]);
  assert.deepEqual(t.instance_group, [{ name: 'convnet', kind: 'KIND_CPU', count: 2, gpus: [], profile: [], passive: false, host_policy: '' }]);
  assert.deepEqual(t.version_policy, { all: {} });
  assert.deepEqual(t.response_cache, { enable: true });
  assert.deepEqual(t.parameters, { execution_mode: { string_value: '0' }, intra_op_thread_count: { string_value: '2' } });
  assert.deepEqual(t.dynamic_batching, {
    preferred_batch_size: [8], max_queue_delay_microseconds: 100, preserve_ordering: false, priority_levels: 2, default_priority_level: 2,
    default_queue_policy: { timeout_action: 'REJECT', default_timeout_microseconds: 5000, allow_timeout_override: true, max_queue_size: 64 },
  });
  const back = convertTritonConfig(t, { modelName: 'convnet' });
  assert.deepEqual(back.problems, []);
  assert.deepEqual(back.warnings, []);
  assert.deepEqual({ ...back.config, name: undefined, inputs: undefined, outputs: undefined }, { ...config, name: undefined, inputs: undefined, outputs: undefined });
  assert.deepEqual(back.config?.inputs, [{ name: 'image', dtype: 'FP32', shape: [-1, 3, 32, 32] }]);
  // Without a READY version the config's declarations are reported; the server's cache switch is honoured.
  const unbatched = tritonConfigFromModel({ name: 'm', config: modelConfigSchema.parse({ inputs: [{ name: 'x', dtype: 'INT64', shape: [-1, 4] }] }), defaultInstanceCount: 3, cacheEnabled: false });
  assert.deepEqual(unbatched.input, [{ name: 'x', data_type: 'TYPE_INT64', dims: [-1, 4] }]);
  assert.equal(unbatched.instance_group[0].count, 3);
  assert.equal(unbatched.dynamic_batching, undefined);
  assert.deepEqual(unbatched.response_cache, { enable: false });
});
