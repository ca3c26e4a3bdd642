/**
 * The bundled models the network targets aim at (models/), with the tensors their config.yaml declares:
 * generators start from a request these accept and bend it from there.
 */
export interface FuzzModel {
  name: string;
  input: string;
  dtype: 'FP32' | 'INT64';
  /** -1: any size (generators fill in 1..3 to keep runs cheap). */
  shape: number[];
  outputs: string[];
  /** Accepts Predict input_text (a text pipeline). */
  text?: boolean;
}

export const TENSOR_MODELS: readonly FuzzModel[] = [
  { name: 'mlp', input: 'input', dtype: 'FP32', shape: [-1, 64], outputs: ['logits'] },
  // Batch 1 only: a convnet run is the most expensive thing here.
  { name: 'convnet', input: 'image', dtype: 'FP32', shape: [1, 3, 32, 32], outputs: ['logits'] },
  { name: 'sentiment', input: 'token_ids', dtype: 'INT64', shape: [-1, -1], outputs: ['probabilities'], text: true },
];

export const GENERATION_MODEL = 'tiny-lm';
/** Every model name the server has, for name generators. */
export const MODEL_NAMES = [...TENSOR_MODELS.map((m) => m.name), GENERATION_MODEL];
/** tiny-lm's vocabulary size: token ids at or past it are out of range. */
export const VOCAB_SIZE = 4096;

/** One arbitrary per model, built once: building fast-check arbitraries per input costs more than drawing from them. */
export function perModel<T>(models: readonly FuzzModel[], build: (m: FuzzModel) => T): (m: FuzzModel) => T {
  const built = new Map(models.map((m) => [m.name, build(m)]));
  return (m) => built.get(m.name)!;
}
