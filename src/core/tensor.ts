/**
 * The internal tensor every front door translates to: typed by DataTypeName, shape as plain numbers,
 * numeric data as little-endian bytes (exactly what the wire carries, so nothing is converted on the way
 * through) and strings as string[].
 */
import type { DataTypeName } from './dtype';

export interface InferTensor {
  name: string;
  dtype: DataTypeName;
  shape: number[];
  /** Little-endian row-major element bytes; empty for STRING. */
  data: Uint8Array;
  /** STRING tensors only. */
  strings?: string[];
}

/** What a model declares (or its session reports) for one input or output. -1 = any size. */
export interface TensorSpec {
  name: string;
  dtype: DataTypeName;
  shape: number[];
  /** Symbolic name per dim ('' for fixed or unnamed). */
  dimNames: string[];
}
