/**
 * LiveAccuracy: how well each classifier version does on real traffic, from feedback.
 *
 * - Every successful classification prediction (the pipeline's observer, `observe`) counts its predicted label
 *   and its confidence per version (tensorgate_predicted_labels_total, tensorgate_prediction_confidence), every
 *   row of a batch; a single-row prediction whose caller knows its id (request.feedbackId) is also remembered
 *   (PredictionStore: bounded, with a TTL).
 * - feedback() takes the true label for a remembered prediction and adds it to its version's AccuracyWindow
 *   (sliding accuracy over the last feedbacks, confusion counts since the version loaded) and to
 *   tensorgate_feedback_total; report() reads the windows (GET /v2/models/{m}/accuracy).
 * - A prediction takes one feedback: a second one is refused (ALREADY_EXISTS). Replacing it would need to
 *   take the first back out of Prometheus counters, which only go up, and a client that resends after a
 *   timeout must not be counted twice.
 * - Windows are per load: a version loaded again (or unloaded) starts over (forget()), and feedback for a
 *   prediction made by an earlier load is refused rather than counted against the new one.
 *
 * Which versions are classifiers, and what confidence means: src/feedback/classifier.ts.
 */
import { Code, echo, invalidArgument, ServingError } from '../core/errors';
import type { InferenceRequest, InferenceResult } from '../core/request';
import type { ModelEntry, ModelRepository, ModelVersionEntry } from '../repository/model-repository';
import type { AccuracyReading, ClassificationMetrics } from '../telemetry/metrics';
import { AccuracyWindow, ACCURACY_WINDOW, type AccuracyReport } from './accuracy-window';
import { CLASSIFIER_RULE, Classifiers, readRow, scoreRows, type Classifier } from './classifier';
import { PredictionStore, type PredictionStoreOptions } from './prediction-store';

export interface FeedbackInput {
  model: string;
  /** The prediction's request id. */
  id: string;
  /** The true label. */
  label: string;
}

export interface FeedbackAnswer {
  model: string;
  version: string;
  request_id: string;
  label: string;
  predicted_label: string;
  correct: boolean;
  accuracy: AccuracyReport;
}

export interface AccuracyAnswer {
  model: string;
  versions: AccuracyReport[];
}

export interface LiveAccuracyParts {
  repository: ModelRepository;
  metrics: ClassificationMetrics;
  store?: PredictionStoreOptions;
  windowSize?: number;
}

/** Labels named in a refusal; a 1000-class model's list is cut short. */
const LABELS_SHOWN = 20;

export class LiveAccuracy {
  readonly store: PredictionStore;
  readonly windowSize: number;
  private readonly classifiers = new Classifiers();
  /** By version key (one per load). */
  private readonly windows = new Map<string, { classifier: Classifier; window: AccuracyWindow }>();
  /** Reused by every row read: the hot path allocates nothing per row. */
  private readonly row = { index: 0, confidence: 0 };

  constructor(private readonly parts: LiveAccuracyParts) {
    this.store = new PredictionStore(parts.store);
    this.windowSize = parts.windowSize ?? ACCURACY_WINDOW;
    parts.metrics.readAccuracyFrom(() => this.readings());
  }

  /** The inference pipeline's observer (PipelineParts.observer): runs for every successful prediction. */
  readonly observe = (request: InferenceRequest, result: InferenceResult, served: { entry: ModelEntry; version: ModelVersionEntry }): void => {
    if (request.unobserved) return;
    try {
      this.count(request, result, served.entry, served.version);
    } catch (err) {
      // Never the prediction's failure: its answer is already computed.
      process.emitWarning(`tensorgate live accuracy: a prediction of ${served.version.key} was not counted: ${(err as Error)?.message ?? String(err)}`);
    }
  };

  private count(request: InferenceRequest, result: InferenceResult, entry: ModelEntry, version: ModelVersionEntry): void {
    const c = this.classifiers.of(entry, version);
    if (!c) return;
    const scores = scoreRows(c, result.outputs);
    if (!scores) return;
    const metrics = this.parts.metrics;
    const rows = scores.length / c.labels.length;
    const histogram = (c.confidenceHistogram ??= metrics.confidence(c.model, c.version));
    const row = this.row;
    for (let r = 0; r < rows; r++) {
      readRow(c, scores, r, row);
      (c.labelCounters[row.index] ??= metrics.predictedLabel(c.model, c.version, c.labels[row.index]!)).inc();
      histogram.observe(row.confidence);
    }
    if (rows === 1 && request.feedbackId) this.store.remember(request.feedbackId, { classifier: c, predicted: row.index, confidence: row.confidence, feedback: -1 });
  }

  /** Records the true label of a remembered prediction; answers with its version's accuracy now. */
  feedback(input: FeedbackInput): FeedbackAnswer {
    const entry = this.parts.repository.entry(input.model);
    this.servedClassifiers(entry);
    if (!input.id) throw invalidArgument("the request id is empty; send the id of the prediction (Predict's request_id, or the id sent with a v2 infer request)");
    if (!input.label) throw invalidArgument('the label is empty; send the true label of the prediction');
    const shownId = echo(input.id);
    const p = this.store.get(input.id);
    if (!p) throw new ServingError(Code.NOT_FOUND, this.store.missing(input.id, shownId));
    const c = p.classifier;
    if (c.model !== entry.name) {
      throw invalidArgument(`request id ${shownId} is a prediction of model '${c.model}', not of model '${entry.name}'; send its feedback for model '${c.model}'`);
    }
    const label = c.labels.indexOf(input.label);
    if (label < 0) throw invalidArgument(`label ${echo(input.label)} is not one of model '${c.model}' version ${c.version}'s labels: ${describeLabels(c.labels)}`);
    if (p.feedback >= 0) {
      throw new ServingError(Code.ALREADY_EXISTS, `request id ${shownId} already has feedback (label '${c.labels[p.feedback]}'); a prediction takes one feedback, the first`);
    }
    const current = entry.versions.find((v) => v.key === c.key && v.state === 'READY');
    if (!current || this.classifiers.of(entry, current) !== c) {
      throw new ServingError(
        Code.FAILED_PRECONDITION,
        `request id ${shownId} was predicted by model '${c.model}' version ${c.version} as loaded before it was reloaded or unloaded; accuracy is kept per load, so its feedback is not counted`,
      );
    }
    p.feedback = label;
    let w = this.windows.get(c.key);
    if (!w) this.windows.set(c.key, (w = { classifier: c, window: new AccuracyWindow(c.labels, this.windowSize) }));
    w.window.add(label, p.predicted);
    this.parts.metrics.feedback(c.model, c.version, c.labels[label]!, c.labels[p.predicted]!);
    return {
      model: c.model,
      version: c.version,
      request_id: input.id,
      label: c.labels[label]!,
      predicted_label: c.labels[p.predicted]!,
      correct: label === p.predicted,
      accuracy: w.window.report(c.model, c.version),
    };
  }

  /** Accuracy of the model's READY versions, or of one version. */
  report(model: string, version?: string): AccuracyAnswer {
    const entry = this.parts.repository.entry(model);
    const served = version ? [this.parts.repository.resolve(model, version).version] : undefined;
    const versions = this.servedClassifiers(entry, served).map(({ version: v, classifier: c }) => {
      const w = this.windows.get(v.key);
      return (w && w.classifier === c ? w.window : new AccuracyWindow(c.labels, this.windowSize)).report(entry.name, v.version);
    });
    return { model: entry.name, versions };
  }

  /** A version loaded again, or unloaded: its window starts over (confusion counts are since load). */
  forget(key: string): void {
    this.windows.delete(key);
  }

  /** For the accuracy gauges, at scrape time. */
  private *readings(): Iterable<AccuracyReading> {
    for (const { classifier: c, window } of this.windows.values()) yield { model: c.model, version: c.version, feedback: window.feedback, accuracy: window.accuracy ?? 0 };
  }

  /** The model's READY versions (or `only`) that are classifiers; refuses a model with none. */
  private servedClassifiers(entry: ModelEntry, only?: ModelVersionEntry[]): { version: ModelVersionEntry; classifier: Classifier }[] {
    const versions = only ?? entry.versions.filter((v) => v.state === 'READY');
    // No READY version: the repository says why (UNAVAILABLE with the reason).
    if (versions.length === 0) this.parts.repository.resolve(entry.name, undefined);
    const found: { version: ModelVersionEntry; classifier: Classifier }[] = [];
    for (const v of versions) {
      const classifier = this.classifiers.of(entry, v);
      if (classifier) found.push({ version: v, classifier });
    }
    if (found.length === 0) {
      const which = only ? `version ${only[0]!.version} of model '${entry.name}'` : `model '${entry.name}'`;
      throw new ServingError(Code.FAILED_PRECONDITION, `${which} is not a classifier, so it takes no feedback and has no accuracy; ${CLASSIFIER_RULE}`);
    }
    return found;
  }
}

function describeLabels(labels: readonly string[]): string {
  if (labels.length <= LABELS_SHOWN) return labels.join(', ');
  return `${labels.slice(0, LABELS_SHOWN).join(', ')}, ... (${labels.length} labels: the class indexes 0 to ${labels.length - 1})`;
}
