/**
 * The KV cache of every sequence one worker decodes for one model, kept as the model's own past tensors
 * for the whole batch: per layer a key and a value of [rows, kvHeads, P, headDim], each row's positions
 * right-aligned (left padding) so that one run advances every row by one token. A step's `present`
 * outputs become the next step's past as they are, with no copy; the cache is copied only when a row
 * joins (to append it and, if its prompt is longer, widen everyone's padding) or leaves (to close the
 * gap and trim padding no remaining row needs). The attention mask hides each row's padding, and its
 * positions count only its real tokens, so a row's tokens are the ones it would get decoding alone.
 */
import type { InferTensor } from '../core/tensor';
import { pastName, presentName, type DecoderLayout } from './decoder-layout';

export class KvBatch {
  /** Per row: the sequence id and how many of its positions are real (the rest of P is padding). */
  readonly seqs: number[] = [];
  readonly lengths: number[] = [];
  /** Padded positions per row. */
  private width = 0;
  /** [layer * 2 + (0 key | 1 value)] -> the bytes of a [rows, kvH, width, D] tensor. */
  private past: Uint8Array[];
  /** Bytes of one position of one head: the unit the (row, head) blocks of a past tensor are made of. */
  private readonly positionBytes: number;

  constructor(private readonly layout: DecoderLayout) {
    this.positionBytes = layout.headDim * (layout.kvDtype === 'FP16' ? 2 : 4);
    this.past = Array.from({ length: layout.layers * 2 }, () => new Uint8Array(0));
  }

  get size(): number {
    return this.seqs.length;
  }

  /** Feeds for one decode step: each row's `next` token at its own position. */
  decodeFeeds(next: readonly number[]): InferTensor[] {
    const rows = this.size;
    const mask = new BigInt64Array(rows * (this.width + 1));
    const positions = new BigInt64Array(rows);
    for (let r = 0; r < rows; r++) {
      const pad = this.width - this.lengths[r]!;
      mask.fill(1n, r * (this.width + 1) + pad, (r + 1) * (this.width + 1));
      positions[r] = BigInt(this.lengths[r]!);
    }
    return modelFeeds(this.layout, {
      ids: BigInt64Array.from(next, BigInt),
      rows,
      length: 1,
      mask,
      positions,
      pastWidth: this.width,
      past: this.past,
    });
  }

  /** After a decode step: the presents are the new past, one position wider; every row has one more real token. */
  advance(outputs: readonly InferTensor[]): void {
    this.past = presentsOf(this.layout, outputs);
    this.width++;
    for (let r = 0; r < this.size; r++) this.lengths[r]!++;
  }

  /** Appends a prefilled row (its presents from a [1, S] run with no past), widening the padding if it is longer. */
  join(seq: number, length: number, presents: readonly InferTensor[]): void {
    const joined = presentsOf(this.layout, presents);
    const width = Math.max(this.width, length);
    const rows = this.size + 1;
    const heads = this.layout.kvHeads;
    this.past = this.past.map((old, i) => {
      const next = new Uint8Array(rows * heads * width * this.positionBytes);
      copyBlocks(old, this.width, next, width, this.size * heads, 0, 0, this.positionBytes);
      copyBlocks(joined[i]!, length, next, width, heads, 0, this.size * heads, this.positionBytes);
      return next;
    });
    this.width = width;
    this.seqs.push(seq);
    this.lengths.push(length);
  }

  /** Drops rows, then trims padding columns no remaining row uses. */
  remove(drop: ReadonlySet<number>): void {
    const keep: number[] = [];
    for (let r = 0; r < this.size; r++) if (!drop.has(this.seqs[r]!)) keep.push(r);
    if (keep.length === this.size) return;
    const width = keep.reduce((w, r) => Math.max(w, this.lengths[r]!), 0);
    const cut = this.width - width;
    const heads = this.layout.kvHeads;
    this.past = this.past.map((old) => {
      const next = new Uint8Array(keep.length * heads * width * this.positionBytes);
      keep.forEach((r, to) => {
        for (let h = 0; h < heads; h++) {
          const from = ((r * heads + h) * this.width + cut) * this.positionBytes;
          next.set(old.subarray(from, from + width * this.positionBytes), (to * heads + h) * width * this.positionBytes);
        }
      });
      return next;
    });
    const seqs = keep.map((r) => this.seqs[r]!);
    const lengths = keep.map((r) => this.lengths[r]!);
    this.seqs.splice(0, this.size, ...seqs);
    this.lengths.splice(0, this.lengths.length, ...lengths);
    this.width = width;
  }
}

/**
 * Copies `blocks` (row, head) blocks of `fromWidth` positions into blocks of `toWidth` positions,
 * right-aligned (the extra positions on the left are padding, left zero).
 */
function copyBlocks(from: Uint8Array, fromWidth: number, to: Uint8Array, toWidth: number, blocks: number, fromBlock: number, toBlock: number, positionBytes: number): void {
  const shift = (toWidth - fromWidth) * positionBytes;
  const size = fromWidth * positionBytes;
  for (let b = 0; b < blocks; b++) {
    const src = (fromBlock + b) * size;
    to.set(from.subarray(src, src + size), (toBlock + b) * toWidth * positionBytes + shift);
  }
}

/** The presents of a run, in past order: [layer * 2 + (0 key | 1 value)]. */
function presentsOf(layout: DecoderLayout, outputs: readonly InferTensor[]): Uint8Array[] {
  const byName = new Map(outputs.map((t) => [t.name, t]));
  const presents: Uint8Array[] = [];
  for (let i = 0; i < layout.layers; i++) {
    for (const kind of ['key', 'value'] as const) {
      const t = byName.get(presentName(i, kind));
      if (!t) throw new Error(`the model returned no '${presentName(i, kind)}'`);
      presents.push(t.data);
    }
  }
  return presents;
}

export interface RunShape {
  ids: BigInt64Array;
  rows: number;
  /** New tokens per row in this run. */
  length: number;
  /** [rows, pastWidth + length]. */
  mask: BigInt64Array;
  /** [rows, length]. */
  positions: BigInt64Array;
  pastWidth: number;
  past: readonly Uint8Array[];
}

/** The model's feeds for one run, in its layout (optional inputs only when the model has them). */
export function modelFeeds(layout: DecoderLayout, s: RunShape): InferTensor[] {
  const feeds: InferTensor[] = [
    int64('input_ids', [s.rows, s.length], s.ids),
    int64('attention_mask', [s.rows, s.pastWidth + s.length], s.mask),
  ];
  if (layout.hasPositionIds) feeds.push(int64('position_ids', [s.rows, s.length], s.positions));
  if (layout.hasUseCacheBranch) feeds.push({ name: 'use_cache_branch', dtype: 'BOOL', shape: [1], data: Uint8Array.of(s.pastWidth > 0 ? 1 : 0) });
  if (layout.hasNumLogitsToKeep) feeds.push(int64('num_logits_to_keep', [], BigInt64Array.of(1n)));
  const shape = [s.rows, layout.kvHeads, s.pastWidth, layout.headDim];
  for (let i = 0; i < layout.layers; i++) {
    feeds.push({ name: pastName(i, 'key'), dtype: layout.kvDtype, shape, data: s.past[i * 2]! });
    feeds.push({ name: pastName(i, 'value'), dtype: layout.kvDtype, shape, data: s.past[i * 2 + 1]! });
  }
  return feeds;
}

function int64(name: string, shape: number[], values: BigInt64Array): InferTensor {
  return { name, dtype: 'INT64', shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** Feeds for a row's prefill: its whole prompt, no past. */
export function prefillFeeds(layout: DecoderLayout, prompt: readonly number[]): InferTensor[] {
  const n = prompt.length;
  return modelFeeds(layout, {
    ids: BigInt64Array.from(prompt, BigInt),
    rows: 1,
    length: n,
    mask: new BigInt64Array(n).fill(1n),
    positions: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
    pastWidth: 0,
    past: Array.from({ length: layout.layers * 2 }, () => new Uint8Array(0)),
  });
}

/**
 * The logits of the last position of `row` in a [rows, S, V] logits output: a view, not a copy (penalties
 * change it in place, which is fine: ONNX Runtime gives every run fresh output buffers, used once).
 */
export function lastLogits(logits: InferTensor, row: number): Float32Array {
  const [, length, vocab] = logits.shape as [number, number, number];
  const all = new Float32Array(logits.data.buffer, logits.data.byteOffset, logits.data.byteLength / 4);
  const start = (row * length + length - 1) * vocab;
  return all.subarray(start, start + vocab);
}
