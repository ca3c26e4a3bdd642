/**
 * Tensors crossing between the main thread and an inference worker (messages.ts WireTensor): numeric bytes
 * move as transferred ArrayBuffers, never as structured-clone copies.
 */
import type { InferTensor } from '../core/tensor';
import type { WireTensor } from './messages';

/**
 * `t` as it crosses, its buffer added to `transfer`. With `owned`, the caller owns `t`'s whole buffer (a merged
 * batch, an output ONNX Runtime made) and it moves without a copy; otherwise (or when the buffer holds more
 * than this tensor, or moves already with another tensor) its bytes are copied once into a buffer of their own.
 */
export function toWire(t: InferTensor, transfer: ArrayBuffer[], owned: boolean): WireTensor {
  const whole = t.data.buffer instanceof ArrayBuffer && t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength;
  let buffer: ArrayBuffer;
  if (owned && whole && !transfer.includes(t.data.buffer as ArrayBuffer)) {
    buffer = t.data.buffer as ArrayBuffer;
  } else {
    buffer = new ArrayBuffer(t.data.byteLength);
    new Uint8Array(buffer).set(t.data);
  }
  transfer.push(buffer);
  return { name: t.name, dtype: t.dtype, shape: t.shape, buffer, ...(t.strings ? { strings: t.strings } : {}) };
}

/** A tensor that crossed, over its buffer (from offset 0, so every element type is aligned). */
export function fromWire(t: WireTensor): InferTensor {
  return { name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(t.buffer), ...(t.strings ? { strings: t.strings } : {}) };
}
