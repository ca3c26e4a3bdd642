/**
 * What the benchmark sends: one fixed single-row request per bundled model, built from seeded data so
 * every run (and every process: load threads, ceilings) sends exactly the same bytes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { BUNDLED_MODELS_DIR } from '../src/paths';
import { readModelConfig, type ModelConfig } from '../src/repository/model-config';

export const ALL_MODELS = ['mlp', 'convnet', 'sentiment'] as const;
export type BenchModel = (typeof ALL_MODELS)[number];

export const SENTENCE = 'I love this movie, it was great';

/** Per-row tensor input of the tensor models: [name, dims without the batch dim]. */
export const TENSOR_INPUTS: Record<Exclude<BenchModel, 'sentiment'>, { name: string; dims: number[] }> = {
  mlp: { name: 'input', dims: [64] },
  convnet: { name: 'image', dims: [3, 32, 32] },
};

import { seededFloats } from '../tools/onnx-builder';

export { seededFloats };

export function rowElements(model: Exclude<BenchModel, 'sentiment'>): number {
  return TENSOR_INPUTS[model].dims.reduce((a, b) => a * b, 1);
}

/** The PredictRequest message (proto-loader object form) every load thread sends for `model`. */
export function predictRequest(model: BenchModel): Record<string, unknown> {
  if (model === 'sentiment') return { model, input_text: SENTENCE };
  const { name, dims } = TENSOR_INPUTS[model];
  const values = seededFloats(rowElements(model), 42);
  const data = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return { model, inputs: [{ name, dtype: 'FP32', shape: [1, ...dims], data, string_data: [] }] };
}

/** The same input as predictRequest, as a v2 ModelInferRequest with raw contents (tensor models only). */
export function modelInferRequest(model: BenchModel): Record<string, unknown> {
  if (model === 'sentiment') throw new Error('ModelInfer takes tensors: the sentiment model is measured through Predict input_text');
  const { name, dims } = TENSOR_INPUTS[model];
  const values = seededFloats(rowElements(model), 42);
  return {
    model_name: model,
    inputs: [{ name, datatype: 'FP32', shape: [1, ...dims] }],
    raw_input_contents: [Buffer.from(values.buffer, values.byteOffset, values.byteLength)],
  };
}

/** BENCH_CONCURRENCY ("1,16,64") as positive integers; `fallback` when unset. */
export function parseConcurrency(spec: string | undefined, fallback: number[]): number[] {
  const levels = spec ? spec.split(',').map((x) => Number(x.trim())) : fallback;
  if (levels.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`BENCH_CONCURRENCY must be positive integers: ${spec}`);
  return levels;
}

export function parseModels(spec: string | undefined): BenchModel[] {
  if (!spec) return [...ALL_MODELS];
  const names = spec.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(ALL_MODELS as readonly string[]).includes(n)) throw new Error(`BENCH_MODELS: unknown model '${n}' (known: ${ALL_MODELS.join(', ')})`);
  }
  return names as BenchModel[];
}

export function modelConfig(model: BenchModel): Promise<ModelConfig> {
  return readModelConfig(path.join(BUNDLED_MODELS_DIR, model, 'config.yaml'), model);
}

/**
 * Copies the bundled models into `dir`; with batching off, `dynamic_batching:` is removed from each
 * config.yaml (max_batch_size stays: it only limits rows per request), so every request runs alone.
 */
export function writeRepository(dir: string, models: readonly BenchModel[], batching: boolean): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const m of models) {
    const target = path.join(dir, m);
    fs.cpSync(path.join(BUNDLED_MODELS_DIR, m), target, { recursive: true });
    if (batching) continue;
    const file = path.join(target, 'config.yaml');
    const doc = parseDocument(fs.readFileSync(file, 'utf8'));
    doc.delete('dynamic_batching');
    fs.writeFileSync(file, doc.toString());
  }
  return dir;
}

/** JSON.parse reviver undoing Buffer.toJSON ({type:'Buffer', data:[...]}), for captured responses. */
export function reviveBuffers(_key: string, value: unknown): unknown {
  const v = value as { type?: unknown; data?: unknown };
  if (v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data)) return Buffer.from(v.data as number[]);
  return value;
}
