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
import type { TextClassification } from '../core/request';
import type { InferTensor } from '../core/tensor';
import type { TextPipelineConfig } from '../repository/model-config';

export const PAD_ID = 0;
export const UNKNOWN_ID = 1;
const WORD = /[\p{L}\p{N}']+/gu;
const SCANNER = new RegExp(WORD.source, WORD.flags);

export type { LabelScore, TextClassification } from '../core/request';

/** One word of a text as the tokenizer reads it: as written, where it is (UTF-16 offsets), its vocabulary id. */
export interface TextWord {
  word: string;
  start: number;
  end: number;
  id: number;
}

export class TextClassificationPipeline {
  /** Ids the model's embedding accepts: 0 .. vocabularySize - 1 (pad and unknown included). */
  readonly vocabularySize: number;

  private constructor(
    readonly config: TextPipelineConfig,
    private readonly vocab: Map<string, number>,
  ) {
    let max = UNKNOWN_ID;
    for (const id of vocab.values()) if (id > max) max = id;
    this.vocabularySize = max + 1;
  }

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
      if (!Number.isInteger(id) || (id as number) < 0 || (id as number) > 0x7fffffff) {
        throw new Error(`text pipeline vocabulary '${config.tokenizer.vocab}': id of '${word}' must be an integer from 0 to 2147483647`);
      }
      vocab.set(word, id as number);
    }
    return new TextClassificationPipeline(config, vocab);
  }

  /**
   * Word ids, at most max_tokens of them. Words are found one at a time and the scan stops at the limit:
   * matching or lowercasing the whole text first would cost time in proportion to the text (a 10 MB text
   * held the event loop for 1.8 s) for words that are thrown away.
   */
  tokenize(text: string): number[] {
    const { max_tokens: limit, lowercase } = this.config.tokenizer;
    const ids: number[] = [];
    // One global-flag regex for every call, restarted here: the scan keeps its place in lastIndex, and nothing
    // else runs between its exec() calls on this thread.
    const word = SCANNER;
    word.lastIndex = 0;
    for (let m = word.exec(text); m !== null && ids.length < limit; m = word.exec(text)) {
      const w = lowercase ? m[0].toLowerCase() : m[0];
      ids.push(this.vocab.get(w) ?? UNKNOWN_ID);
    }
    return ids;
  }

  /**
   * The words tokenize() reads, each with its place in `text` (UTF-16 offsets, so text.slice(start, end) is the
   * word as written) and its id: at most `limit` of them plus one, so a caller can tell a text that has more
   * (explanations refuse those rather than explain a prefix). Stops scanning there, as tokenize() does.
   */
  words(text: string, limit: number): TextWord[] {
    const lowercase = this.config.tokenizer.lowercase;
    const words: TextWord[] = [];
    const word = new RegExp(WORD.source, WORD.flags);
    for (let m = word.exec(text); m !== null && words.length <= limit; m = word.exec(text)) {
      const w = lowercase ? m[0].toLowerCase() : m[0];
      words.push({ word: m[0], start: m.index, end: m.index + m[0].length, id: this.vocab.get(w) ?? UNKNOWN_ID });
    }
    return words;
  }

  /**
   * Refuses token ids the model's embedding cannot look up: ONNX Runtime would fail the run (and, merged
   * into a batch, the requests beside it), so this is a client error found before anything is queued.
   */
  checkTokenIds(t: InferTensor): void {
    if (t.name !== this.config.input || t.dtype !== 'INT64') return;
    // A DataView: the bytes of a received message need not be 8-byte aligned.
    const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const size = BigInt(this.vocabularySize);
    for (let i = 0; i < t.data.byteLength / 8; i++) {
      const id = view.getBigInt64(i * 8, true);
      if (id < 0n || id >= size) {
        throw invalidArgument(
          `input '${t.name}': element ${i} is token id ${id}, outside the model's vocabulary of ${this.vocabularySize} ids (0 to ${this.vocabularySize - 1}; 0 pads, 1 is the unknown word)`,
        );
      }
    }
  }

  /** The model input for one text: token ids as INT64 [1, n] (n >= 1; an empty text is one pad token). */
  encode(text: string): InferTensor {
    if (typeof text !== 'string') throw invalidArgument('input_text must be a string');
    const ids = this.tokenize(text);
    if (ids.length === 0) ids.push(PAD_ID);
    // INT64 little-endian (as ONNX Runtime reads it on every platform it ships for): ids are below 2^31, so each
    // is its low 32-bit word with a zero high word; written through an Int32Array, no BigInt is made per token.
    const words = new Int32Array(ids.length * 2);
    for (let i = 0; i < ids.length; i++) words[i * 2] = ids[i]!;
    return { name: this.config.input, dtype: 'INT64', shape: [1, ids.length], data: new Uint8Array(words.buffer) };
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
