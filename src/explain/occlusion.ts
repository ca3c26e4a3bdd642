/**
 * Explanations of text classification by occlusion: how much each word moves the score of a label.
 *
 *   contribution(word) = P(label | text) - P(label | text without that word)
 *
 * The text and its N variants (each with one word removed, the rest shifted left and padded at the end with the
 * pad id, as the tokenizer pads) go as ONE request of N+1 rows through the shared inference pipeline, so the
 * queue, batching, breaker, result cache, deadlines, metrics and access policy apply as to any Predict; the
 * rows are marked `unobserved` so live accuracy does not count them as predictions.
 *
 * Bounds: a text may have at most maxWords(model) words (the tokenizer's max_tokens, and one fewer than the
 * model's max_batch_size, since the batch holds the text and one row per word); a longer text is refused
 * rather than explained in part. Offsets are UTF-16 code units (JavaScript string indexes).
 */
import type { Span } from '@opentelemetry/api';
import { Code, echo, internal, invalidArgument, resourceExhausted, ServingError } from '../core/errors';
import type { CancelSignal } from '../core/cancellation';
import type { InferenceResult } from '../core/request';
import type { InferTensor } from '../core/tensor';
import { PAD_ID, type TextClassificationPipeline } from '../pipelines/text-classification';
import type { ModelEntry, ModelRepository } from '../repository/model-repository';
import type { InferencePipeline } from '../serving/inference-pipeline';

export interface ExplainInput {
  model: string;
  /** '' = the version a Predict naming none would get (canary split included). */
  version: string;
  text: string;
  /** The label to explain; '' = the predicted one. */
  label: string;
  requestId: string;
  routingKey?: string;
  deadline?: number;
  signal?: CancelSignal;
  priority?: number;
  timeoutMs?: number;
  bypassCache?: boolean;
  /** The call's span (InferenceRequest.span). */
  span?: Span;
}

export interface WordContribution {
  /** As written in the text. */
  word: string;
  /** text.slice(start, end) === word (UTF-16 offsets). */
  start: number;
  end: number;
  contribution: number;
}

/** Field names as in the ExplainResponse message, so REST and gRPC answer the same object. */
export interface Explanation {
  model: string;
  version: string;
  request_id: string;
  predicted_label: string;
  predicted_probability: number;
  label: string;
  probability: number;
  words: WordContribution[];
  cached: boolean;
}

export interface ExplainerParts {
  pipeline: InferencePipeline;
  repository: ModelRepository;
  /** The server's input_text limit (--max-text-bytes), as Predict applies it. */
  maxTextBytes: number;
}

const NEEDS = 'explain needs a text classification model (config.yaml text_pipeline.kind: text_classification): it removes words from the text one at a time';

export class OcclusionExplainer {
  constructor(private readonly parts: ExplainerParts) {}

  /** The most words a text may have for `entry`, and why. */
  static maxWords(entry: ModelEntry, pipeline: TextClassificationPipeline): { words: number; why: string } {
    const tokens = pipeline.config.tokenizer.max_tokens;
    const batch = entry.config?.max_batch_size ?? 0;
    if (batch > 0 && batch - 1 < tokens) {
      return { words: batch - 1, why: `its max_batch_size is ${batch} rows: the text and one variant per word` };
    }
    return { words: tokens, why: `its tokenizer reads at most max_tokens ${tokens} words` };
  }

  async explain(input: ExplainInput): Promise<{ explanation: Explanation; result: InferenceResult }> {
    // The repository's NOT_FOUND / UNAVAILABLE first; the version itself is chosen by the pipeline.
    const { entry } = this.parts.repository.resolve(input.model, input.version || undefined);
    const pipeline = entry.textPipeline;
    if (!pipeline || entry.config?.text_pipeline?.kind !== 'text_classification') {
      throw new ServingError(Code.FAILED_PRECONDITION, `model '${entry.name}' has no text classification pipeline; ${NEEDS}`);
    }
    const labels = pipeline.config.labels;
    if (typeof input.text !== 'string' || input.text.length === 0) throw invalidArgument('text is empty; send the text to explain');
    const bytes = Buffer.byteLength(input.text, 'utf8');
    if (bytes > this.parts.maxTextBytes) {
      throw resourceExhausted(`text is ${bytes} bytes, more than the limit of ${this.parts.maxTextBytes} (--max-text-bytes / TENSORGATE_MAX_TEXT_BYTES)`);
    }
    if (input.label && !labels.includes(input.label)) {
      throw invalidArgument(`label ${echo(input.label)} is not one of model '${entry.name}''s labels: ${labels.join(', ')} (or send none to explain the predicted one)`);
    }
    const limit = OcclusionExplainer.maxWords(entry, pipeline);
    const words = pipeline.words(input.text, limit.words);
    if (words.length === 0) throw invalidArgument(`text ${echo(input.text)} has no words the tokenizer reads (runs of letters, digits and apostrophes); nothing to explain`);
    if (words.length > limit.words) {
      throw invalidArgument(`text has more than ${limit.words} words; explain takes at most ${limit.words} for model '${entry.name}' (${limit.why}); send a shorter text`);
    }

    const result = await this.parts.pipeline.predict({
      model: input.model,
      version: input.version,
      inputs: [occlusionRows(pipeline.config.input, words.map((w) => w.id))],
      outputs: [pipeline.config.output],
      deadline: input.deadline,
      signal: input.signal,
      requestId: input.requestId,
      ...(input.routingKey ? { routingKey: input.routingKey } : {}),
      priority: input.priority,
      timeoutMs: input.timeoutMs,
      bypassCache: input.bypassCache,
      unobserved: true,
      span: input.span,
    });

    const scores = scoreMatrix(result.outputs, pipeline.config.output, words.length + 1, labels.length);
    let predicted = 0;
    for (let i = 1; i < labels.length; i++) if (scores[i]! > scores[predicted]!) predicted = i;
    const explained = input.label ? labels.indexOf(input.label) : predicted;
    const whole = scores[explained]!;
    return {
      explanation: {
        model: result.model,
        version: result.version,
        request_id: input.requestId,
        predicted_label: labels[predicted]!,
        predicted_probability: scores[predicted]!,
        label: labels[explained]!,
        probability: whole,
        words: words.map((w, i) => ({ word: w.word, start: w.start, end: w.end, contribution: whole - scores[(i + 1) * labels.length + explained]! })),
        cached: result.cached,
      },
      result,
    };
  }
}

/** INT64 [N+1, N]: the ids, then the ids without word i (shifted left, padded at the end) for each i. */
export function occlusionRows(input: string, ids: number[]): InferTensor {
  const n = ids.length;
  const data = new BigInt64Array((n + 1) * n).fill(BigInt(PAD_ID));
  for (let j = 0; j < n; j++) data[j] = BigInt(ids[j]!);
  for (let i = 0; i < n; i++) {
    const row = (i + 1) * n;
    for (let j = 0, k = 0; j < n; j++) if (j !== i) data[row + k++] = BigInt(ids[j]!);
  }
  return { name: input, dtype: 'INT64', shape: [n + 1, n], data: new Uint8Array(data.buffer) };
}

function scoreMatrix(outputs: InferTensor[], name: string, rows: number, labels: number): Float32Array {
  const t = outputs.find((o) => o.name === name);
  if (!t || t.dtype !== 'FP32' || t.data.byteLength !== rows * labels * 4) {
    throw internal(`text pipeline output '${name}' must be FP32 [${rows}, ${labels}] for ${rows} rows, got ${t ? `${t.dtype} [${t.shape.join(', ')}]` : 'none'}`);
  }
  return t.data.byteOffset % 4 === 0 ? new Float32Array(t.data.buffer, t.data.byteOffset, rows * labels) : new Float32Array(t.data.slice().buffer);
}
