/**
 * AccuracyWindow: one model version's feedback since it loaded. Accuracy is over a sliding window of the last
 * `size` feedbacks (a count window, not a time window: a quiet model keeps a meaningful number, and a busy
 * one reflects the latest behaviour); the confusion counts (true label x predicted label) cover everything
 * since the load. Memory: the window is `size` bytes; the confusion counts hold only the label pairs seen
 * (at most classes^2 entries).
 */

/** Feedbacks the sliding window holds. */
export const ACCURACY_WINDOW = 1000;

export interface ConfusionCount {
  label: string;
  predicted: string;
  count: number;
}

export interface AccuracyReport {
  model: string;
  version: string;
  window_size: number;
  window_feedback: number;
  window_correct: number;
  /** window_correct / window_feedback; null before any feedback. */
  accuracy: number | null;
  total_feedback: number;
  total_correct: number;
  labels: string[];
  /** Non-zero cells only, true label then predicted label in label order. */
  confusion: ConfusionCount[];
}

export class AccuracyWindow {
  /** 1 for a right prediction, 0 for a wrong one, in a ring of `size`. */
  private readonly ring: Uint8Array;
  private next = 0;
  private filled = 0;
  private correctInWindow = 0;
  private total = 0;
  private totalCorrect = 0;
  /** Keyed by trueIndex x classes + predictedIndex. */
  private readonly confusion = new Map<number, number>();

  constructor(
    private readonly labels: readonly string[],
    readonly size = ACCURACY_WINDOW,
  ) {
    this.ring = new Uint8Array(size);
  }

  add(trueIndex: number, predictedIndex: number): void {
    const correct = trueIndex === predictedIndex ? 1 : 0;
    if (this.filled === this.size) this.correctInWindow -= this.ring[this.next]!;
    else this.filled++;
    this.ring[this.next] = correct;
    this.next = (this.next + 1) % this.size;
    this.correctInWindow += correct;
    this.total++;
    this.totalCorrect += correct;
    const cell = trueIndex * this.labels.length + predictedIndex;
    this.confusion.set(cell, (this.confusion.get(cell) ?? 0) + 1);
  }

  /** Feedbacks in the window now. */
  get feedback(): number {
    return this.filled;
  }

  get accuracy(): number | null {
    return this.filled === 0 ? null : this.correctInWindow / this.filled;
  }

  report(model: string, version: string): AccuracyReport {
    const classes = this.labels.length;
    const confusion = [...this.confusion.entries()]
      .sort(([a], [b]) => a - b)
      .map(([cell, count]) => ({ label: this.labels[Math.floor(cell / classes)]!, predicted: this.labels[cell % classes]!, count }));
    return {
      model,
      version,
      window_size: this.size,
      window_feedback: this.filled,
      window_correct: this.correctInWindow,
      accuracy: this.accuracy,
      total_feedback: this.total,
      total_correct: this.totalCorrect,
      labels: [...this.labels],
      confusion,
    };
  }
}
