/**
 * The text pipeline of classification models (the seed's `input_text` -> `output_text`, `confidence`):
 * tokenise text into vocabulary ids for the model's INT64 [batch, tokens] input, and turn its
 * [batch, labels] scores back into the best label, its score and every label's score.
 *
 * The tokenizer is a word-vocabulary one: lowercase, split on anything that is not a letter, digit or
 * apostrophe, look each word up (id 1 for unknown words), pad with id 0.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { invalidArgument, internal } from '../core/errors';
import type { InferTensor } from '../core/tensor';
import type { TextPipelineConfig } from '../repository/model-config';

export const PAD_ID = 0;
export const UNKNOWN_ID = 1;
const WORD = /[\p{L}\p{N}']+/gu;

export interface LabelScore {
  label: string;
  score: number;
}

export interface TextClassification {
  label: string;
  confidence: number;
  labels: LabelScore[];
}

export class TextClassificationPipeline {
  private constructor(
    readonly config: TextPipelineConfig,
    private readonly vocab: Map<string, number>,
  ) {}

  static async load(modelDir: string, config: TextPipelineConfig): Promise<TextClassificationPipeline> {
    const file = path.join(modelDir, config.tokenizer.vocab);
    let raw: unknown;
    try {
      raw = JSON.parse(await fs.readFile(file, 'utf8'));
    } catch (err) {
      throw new Error(`text pipeline vocabulary '${config.tokenizer.vocab}' cannot be read: ${(err as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new Error(`text pipeline vocabulary '${config.tokenizer.vocab}' must be a JSON object of word -> id`);
    }
    const vocab = new Map<string, number>();
    for (const [word, id] of Object.entries(raw)) {
      if (!Number.isInteger(id) || (id as number) < 0) {
        throw new Error(`text pipeline vocabulary '${config.tokenizer.vocab}': id of '${word}' must be a non-negative integer`);
      }
      vocab.set(word, id as number);
    }
    return new TextClassificationPipeline(config, vocab);
  }

  tokenize(text: string): number[] {
    const source = this.config.tokenizer.lowercase ? text.toLowerCase() : text;
    const words = source.match(WORD) ?? [];
    return words.slice(0, this.config.tokenizer.max_tokens).map((w) => this.vocab.get(w) ?? UNKNOWN_ID);
  }

  /** The model input for one text: token ids as INT64 [1, n] (n >= 1; an empty text is one pad token). */
  encode(text: string): InferTensor {
    if (typeof text !== 'string') throw invalidArgument('input_text must be a string');
    const ids = this.tokenize(text);
    if (ids.length === 0) ids.push(PAD_ID);
    const data = new BigInt64Array(ids.map((id) => BigInt(id)));
    return { name: this.config.input, dtype: 'INT64', shape: [1, ids.length], data: new Uint8Array(data.buffer) };
  }

  decode(outputs: InferTensor[]): TextClassification {
    const scores = outputs.find((t) => t.name === this.config.output);
    if (!scores) throw internal(`text pipeline output '${this.config.output}' missing from the model's results`);
    const labels = this.config.labels;
    if (scores.dtype !== 'FP32' || scores.data.byteLength !== labels.length * 4) {
      throw internal(
        `text pipeline output '${this.config.output}' must be FP32 [1, ${labels.length}], got ${scores.dtype} [${scores.shape.join(', ')}]`,
      );
    }
    const values = new Float32Array(scores.data.buffer, scores.data.byteOffset, labels.length);
    const all = labels.map((label, i) => ({ label, score: values[i]! }));
    const best = all.reduce((a, b) => (b.score > a.score ? b : a));
    return { label: best.label, confidence: best.score, labels: all };
  }
}
