/**
 * Which model versions are classifiers for live accuracy, and how a row of their output reads as a predicted
 * label and a confidence. The rule, kept simple on purpose:
 *
 * - a text classification model (config `text_pipeline.kind: text_classification`): its pipeline's output and
 *   labels; the confidence is the predicted label's score, exactly the `confidence` Predict returns;
 * - a tensor model whose only output is FP32 [batch, C] with C fixed, 2 <= C <= MAX_CLASSES: labels are the
 *   class indexes "0".."C-1"; the confidence is the row's largest value when the row already is a probability
 *   distribution (every value in [0, 1], summing to 1 within 1e-3), else the largest value of its softmax;
 * - anything else is not a classifier: its predictions are not counted and feedback for it is refused.
 *
 * Decided once per loaded version (and config), then cached: the hot path pays a WeakMap lookup.
 */
import type { ModelConfig } from '../repository/model-config';
import type { ModelEntry, ModelVersionEntry } from '../repository/model-repository';
import type { InferTensor } from '../core/tensor';

/** More classes than this are not treated as a classifier: label values would mint too many metric series. */
export const MAX_CLASSES = 1000;
const DISTRIBUTION_TOLERANCE = 1e-3;

export interface Classifier {
  readonly model: string;
  /** The version's name ("1"), as metrics and answers show it. */
  readonly version: string;
  /** The load's key (src/core/model-key.ts): what tells this load from a later reload of the same version. */
  readonly key: string;
  readonly output: string;
  readonly labels: readonly string[];
  /** A text pipeline's scores are reported as they are; a tensor model's are softmaxed unless already probabilities. */
  readonly text: boolean;
  /** Metric children per label, filled on first use (see ClassificationMetrics). */
  readonly labelCounters: ({ inc(): void } | undefined)[];
  confidenceHistogram: { observe(value: number): void } | undefined;
}

/** What the rule above says about a version that is not a classifier, for refusals. */
export const CLASSIFIER_RULE =
  'live accuracy needs a classifier: a text classification model (text_pipeline.kind: text_classification), ' +
  `or a model whose only output is FP32 [batch, classes] with 2 to ${MAX_CLASSES} classes`;

export class Classifiers {
  private readonly known = new WeakMap<ModelVersionEntry, { config: ModelConfig | undefined; classifier: Classifier | undefined }>();

  /** The version's classifier, or undefined when it is not one (see the file comment). */
  of(entry: ModelEntry, version: ModelVersionEntry): Classifier | undefined {
    const cached = this.known.get(version);
    if (cached && cached.config === entry.config) return cached.classifier;
    const classifier = describe(entry, version);
    this.known.set(version, { config: entry.config, classifier });
    return classifier;
  }
}

function describe(entry: ModelEntry, version: ModelVersionEntry): Classifier | undefined {
  const text = entry.config?.text_pipeline;
  if (text?.kind === 'text_classification' && entry.textPipeline) return make(version, text.output, text.labels, true);
  if (version.outputs.length !== 1) return undefined;
  const out = version.outputs[0]!;
  const classes = out.shape[1] ?? -1;
  if (out.dtype !== 'FP32' || out.shape.length !== 2 || classes < 2 || classes > MAX_CLASSES) return undefined;
  return make(version, out.name, Array.from({ length: classes }, (_, i) => String(i)), false);
}

function make(version: ModelVersionEntry, output: string, labels: readonly string[], text: boolean): Classifier {
  return { model: version.model, version: version.version, key: version.key, output, labels, text, labelCounters: new Array(labels.length), confidenceHistogram: undefined };
}

/** The classifier's output among a result's tensors, as float rows; undefined when it is absent or not [rows, C]. */
export function scoreRows(classifier: Classifier, outputs: readonly InferTensor[]): Float32Array | undefined {
  let t: InferTensor | undefined;
  for (const o of outputs) if (o.name === classifier.output) t = o;
  const classes = classifier.labels.length;
  if (!t || t.dtype !== 'FP32' || t.shape.length !== 2 || t.shape[1] !== classes || t.data.byteLength !== t.shape[0]! * classes * 4) return undefined;
  // Outputs are 4-byte aligned as the runtime hands them over; a copy only for one that is not.
  if (t.data.byteOffset % 4 === 0) return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
  return new Float32Array(t.data.slice().buffer);
}

/** A row's predicted class (the first largest score) and its confidence; `into` is reused to avoid allocating. */
export function readRow(classifier: Classifier, scores: Float32Array, row: number, into: { index: number; confidence: number }): void {
  const classes = classifier.labels.length;
  const at = row * classes;
  let best = 0;
  let max = scores[at]!;
  let sum = 0;
  let distribution = true;
  for (let i = 0; i < classes; i++) {
    const v = scores[at + i]!;
    if (v > max) {
      best = i;
      max = v;
    }
    if (!(v >= 0 && v <= 1)) distribution = false;
    sum += v;
  }
  into.index = best;
  if (classifier.text || (distribution && Math.abs(sum - 1) <= DISTRIBUTION_TOLERANCE)) {
    into.confidence = max;
    return;
  }
  // softmax's largest value: 1 / sum(exp(v - max)), computed from the max for numerical safety.
  let denominator = 0;
  for (let i = 0; i < classes; i++) denominator += Math.exp(scores[at + i]! - max);
  into.confidence = Number.isFinite(denominator) && denominator > 0 ? 1 / denominator : 0;
}
