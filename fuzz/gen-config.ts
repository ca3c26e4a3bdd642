/**
 * Config parser inputs, run in-process: config.yaml texts (a valid config of the bundled kind, bent
 * structurally, then maybe cut or byte-mutated; YAML's own traps: aliases, tags, anchors, deep nesting,
 * duplicate keys) and config.pbtxt texts (a valid Triton config bent the same way; the text format's traps:
 * escapes, comments, lists, maps, oneofs, numbers in every base, unterminated strings).
 */
import fc from 'fast-check';
import type { Case } from './case';
import { floatArb, sometimes } from './gen-common';
import { wrongTypeArb } from './gen-http';

/** A config.yaml that is valid on its own (the bundled models' kind of settings)... */
const yamlCoreArb = fc.record({
  description: fc.string({ maxLength: 12 }),
  version_policy: fc.constantFrom<unknown>({ latest: 1 }, { all: true }, { specific: [1, 3] }),
  inputs: fc.constantFrom<unknown>([{ name: 'input', dtype: 'FP32', shape: [-1, 64] }], [{ name: 'ids', dtype: 'INT64', shape: [-1, -1] }], []),
  outputs: fc.constant([{ name: 'logits', dtype: 'FP32', shape: [-1, 10] }]),
  deterministic: fc.boolean(),
  max_batch_size: fc.constantFrom(0, 8, 256),
  queue: fc.record({ max_size: fc.nat(2000), priority_levels: fc.constantFrom(1, 2, 16), default_timeout_us: fc.nat() }),
  session: fc.record({ intra_op_threads: fc.nat(4), execution_providers: fc.constantFrom<unknown>(['cpu'], ['cuda', 'cpu']) }),
});

/** ...and one setting of a riskier kind (one of them usually invalid in some way) added now and then. */
const yamlExtraArb: fc.Arbitrary<Record<string, unknown>> = fc.constantFrom<Record<string, unknown>>(
  { version_policy: { latest: 0 } }, { version_policy: { specific: [] } }, { version_policy: { latest: 1, all: true } },
  { inputs: [{ name: '', dtype: 'fp32', shape: [-2] }] }, { inputs: [{ name: 'x', dtype: 'BYTES' }] },
  { dynamic_batching: { preferred_batch_sizes: [4, 300], max_queue_delay_us: 100 } }, { dynamic_batching: { max_queue_delay_us: -1 } },
  { queue: { priority_levels: 20, default_priority: 21 } }, { queue: { priority_levels: 2, default_priority: 2 } },
  { execution_timeout_ms: 2 ** 40 }, { execution_timeout_ms: 100 }, { result_cache: { enabled: false, ttl_ms: -1 } },
  { canary: { weights: { '1': 90, '2': 10 } } }, { canary: { weights: {} } }, { canary: { weights: { x: 1 } } }, { canary: { weights: { '1': 0 } } },
  { generation: { max_tokens: 16, default_max_tokens: 32 } }, { generation: {} }, { generation: { max_concurrent_sequences: 0 } },
  { warmup: [{ name: 'w', inputs: { input: { dtype: 'FP32', shape: [1, 64], data: 'zero' } } }] }, { warmup: [{}] }, { warmup: 'x' },
  { text_pipeline: { kind: 'text_classification', tokenizer: { type: 'word_vocab', vocab: 'vocab.json' }, input: 'i', output: 'o', labels: ['a', 'b'] } },
  { text_pipeline: { kind: 'x' } }, { session: { execution_providers: [] } }, { session: { execution_providers: ['gpu'] } },
  { versions: { '1': { sha256: 'ab'.repeat(32) } } }, { versions: { '0': {} } }, { versions: { '1': { sha256: 123 } } }, { name: 'fuzz' }, { name: 'other' },
);

const yamlBaseArb = fc.tuple(yamlCoreArb, sometimes(yamlExtraArb, 3)).map(([core, extra]) => ({ ...core, ...extra }) as Record<string, unknown>);

/** Deep nesting: the parser must bound its recursion (these cost ~10 ms each, so they come rarely). */
const yamlDeepArb = fc.constantFrom(`${'['.repeat(5000)}${']'.repeat(5000)}\n`, `${'- '.repeat(3000)}x\n`, `${'{a: '.repeat(2000)}1${'}'.repeat(2000)}\n`);

/** YAML-level traps spliced in as text (the YAML library must refuse or bound them, never throw a TypeError). */
const yamlTrapArb = fc.constantFrom(
  'a: &a [1, 2]\nb: [*a, *a, *a]\n',
  `${Array.from({ length: 12 }, (_, i) => `l${i}: &l${i} [${i ? Array(8).fill(`*l${i - 1}`).join(', ') : '"x"'}]`).join('\n')}\n`,
  'inputs: !!binary aGVsbG8=\n',
  'max_batch_size: !!float .inf\n',
  'deterministic: yes\n',
  'name: fuzz\nname: fuzz\n',
  '<<: {max_batch_size: 1}\n',
  '? a\n: c\n',
  '%YAML 1.1\n---\nmax_batch_size: 0o17\n',
  'max_batch_size: 0x10\n',
  '--- \n...\n--- \nx: 1\n',
  'description: "\\ud800"\n',
  '\t- tab\n',
  'inputs:\n  - {name: input, dtype: FP32, shape: [1e400]}\n',
  'max_batch_size: 99999999999999999999999\n',
  'session: {execution_providers: !!set {cpu: null}}\n',
  '__proto__: {x: 1}\n',
  'constructor: {prototype: {}}\n',
);

function yamlText(obj: Record<string, unknown>): string {
  // JSON is YAML: a faithful serialisation without a YAML writer; flow style is as valid as block.
  return Object.entries(obj).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n') + '\n';
}

/** Byte-level mutations of a text (kept as a JS string: a parser reads files as UTF-8 text). */
function mutateTextArb(text: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.nat().map((n) => text.slice(0, n % (text.length + 1))),
    fc.tuple(fc.nat(), fc.constantFrom('{', '}', '[', ']', ':', '"', "'", '\\', '#', '\n', '-', '&', '*', '!', '|', '>', '<', '\u0000', '\ufffd', ',', ';', '0x', '\t')).map(([n, s]) => {
      const at = n % (text.length + 1);
      return text.slice(0, at) + s + text.slice(at);
    }),
    fc.tuple(fc.nat(), fc.integer({ min: 1, max: 8 })).map(([n, len]) => {
      const at = n % (text.length + 1);
      return text.slice(0, at) + text.slice(at + len);
    }),
  );
}

const yamlArb: fc.Arbitrary<string> = fc
  .tuple(yamlBaseArb, sometimes(fc.tuple(fc.constantFrom('max_batch_size', 'inputs', 'queue', 'session', 'version_policy', 'warmup', 'canary', 'versions'), wrongTypeArb), 6))
  .map(([obj, retype]) => yamlText(retype ? { ...obj, [retype[0]]: retype[1] } : obj))
  .chain((text) =>
    fc.oneof(
      { weight: 80, arbitrary: fc.constant(text) },
      { weight: 30, arbitrary: mutateTextArb(text) },
      { weight: 20, arbitrary: yamlTrapArb },
      { weight: 10, arbitrary: yamlTrapArb.map((t) => text + t) },
      { weight: 1, arbitrary: yamlDeepArb },
    ),
  );

const pbtxtNumber = fc.oneof(fc.integer({ min: -2, max: 300 }).map(String), fc.constantFrom('0x10', '017', '1e3', '9223372036854775808', '-0', '1.5', '.5f', '99999999999999999999999'));

const pbtxtTensorArb = (kind: 'input' | 'output') =>
  fc
    .record({
      name: fc.constantFrom('"input"', '"logits"', '""', "'x'", '"\\xff\\xfe"', '"\\u00e9"', '"a" "b"', '"\\777"', '"\\U0010ffff"'),
      data_type: fc.constantFrom('TYPE_FP32', 'TYPE_INT64', 'TYPE_STRING', 'TYPE_INVALID', 'TYPE_BF16', 'FP32', '1', '99', '-1'),
      dims: fc.array(pbtxtNumber, { maxLength: 4 }),
      extra: fc.constantFrom('', 'reshape: { shape: [ 1 ] }', 'format: FORMAT_NCHW', 'optional: true', 'is_shape_tensor: true', 'is_non_linear_format_io: true', 'label_filename: "l.txt"', 'allow_ragged_batch: t'),
    })
    .map((t) => `${kind} [ { name: ${t.name} data_type: ${t.data_type} dims: [ ${t.dims.join(', ')} ] ${t.extra} } ]`);

const pbtxtArb: fc.Arbitrary<string> = fc
  .record({
    name: fc.constantFrom('', 'name: "fuzz"', 'name: "other"', "name: 'fuzz'"),
    platform: fc.constantFrom('', 'platform: "onnxruntime_onnx"', 'backend: "onnxruntime"', 'platform: "tensorrt_plan"', 'backend: "python"'),
    mbs: fc.oneof(fc.constant(''), pbtxtNumber.map((n) => `max_batch_size: ${n}`)),
    input: pbtxtTensorArb('input'),
    output: pbtxtTensorArb('output'),
    batching: fc.constantFrom(
      '',
      'dynamic_batching { }',
      'dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }',
      'dynamic_batching { priority_levels: 2 default_priority_level: 3 default_queue_policy { timeout_action: DELAY max_queue_size: 5 } priority_queue_policy { key: 1 value { max_queue_size: 2 } } }',
      'dynamic_batching { priority_queue_policy { key: 1 value { } } priority_queue_policy { key: 1 value { } } }',
      'sequence_batching { }',
      'ensemble_scheduling { step [ ] }',
    ),
    instances: fc.constantFrom('', 'instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] } ]', 'instance_group [ { count: 0 kind: KIND_CPU } ]', 'instance_group { kind: KIND_WHAT }', 'instance_group [ { passive: true rate_limiter { } } ]'),
    policy: fc.constantFrom('', 'version_policy: { latest: { num_versions: 2 } }', 'version_policy { all { } }', 'version_policy { specific { versions: [1, 3] } }', 'version_policy { latest { } all { } }'),
    params: fc.constantFrom('', 'parameters { key: "intra_op_thread_count" value: { string_value: "2" } }', 'parameters { key: "execution_mode" value: { string_value: "7" } }', 'parameters [ { key: "x" value { string_value: "y" } } ]', 'parameters { key: "intra_op_thread_count" value: { string_value: "-1" } }'),
    warmup: fc.constantFrom('', 'model_warmup [ { name: "w" batch_size: 2 inputs { key: "input" value: { data_type: TYPE_FP32 dims: [ 64 ] zero_data: true } } } ]', 'model_warmup { inputs { key: "input" value { } } }'),
    misc: fc.constantFrom('', '# comment\n', 'optimization { graph { level: 1 } }', 'response_cache { enable: true }', 'default_model_filename: "m.onnx"', 'typo_field: 1', 'max_batch_size: 1 max_batch_size: 2', 'runtime: "x"', 'model_metrics { }'),
    float: floatArb.map((f) => `# ${f}`),
  })
  .map((r) => [r.name, r.platform, r.mbs, r.input, r.output, r.batching, r.instances, r.policy, r.params, r.warmup, r.misc, r.float].filter(Boolean).join('\n'))
  .chain((text) =>
    fc.oneof(
      { weight: 8, arbitrary: fc.constant(text) },
      { weight: 4, arbitrary: mutateTextArb(text) },
      { weight: 1, arbitrary: fc.constantFrom(`${'optimization { '.repeat(3000)}`, `${'optimization {'.repeat(2000)}${'}'.repeat(2000)}`, '"unterminated', 'name: "\\', "name: '\\x'", 'input [', '\ufeffname: "fuzz"', 'name: "\\uD800"') },
    ),
  );

export const configYamlArb: fc.Arbitrary<Case> = yamlArb.map((text) => ({ kind: 'config', file: 'config.yaml', text }));

export const configPbtxtArb: fc.Arbitrary<Case> = pbtxtArb.map((text) => ({ kind: 'config', file: 'config.pbtxt', text }));
