/**
 * The values of ONNX initializers, read and written: what the optimisation passes change (float weights to
 * int8 or float16, small weights to zero). ONNX stores numbers little-endian in raw_data, or in the typed
 * repeated fields (float_data ...); both are read, and what we write goes to raw_data.
 */
import { DataType, int64ToNumber, type OnnxTensor } from './onnx-proto';

export function tensorDims(t: OnnxTensor): number[] {
  return (t.dims ?? []).map(int64ToNumber);
}

export function tensorElementCount(t: OnnxTensor): number {
  return tensorDims(t).reduce((a, b) => a * b, 1);
}

export function isExternal(t: OnnxTensor): boolean {
  return t.dataLocation === 1 || (t.externalData?.length ?? 0) > 0;
}

/** A FLOAT initializer's values; undefined when it is not FLOAT or its data lives in an external file. */
export function floatValues(t: OnnxTensor): Float32Array | undefined {
  if (t.dataType !== DataType.FLOAT || isExternal(t)) return undefined;
  const count = tensorElementCount(t);
  if (t.rawData && t.rawData.byteLength > 0) {
    if (t.rawData.byteLength !== count * 4) throw new Error(`initializer '${t.name}': raw_data has ${t.rawData.byteLength} bytes, its dims need ${count * 4}`);
    const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  const data = t.floatData ?? [];
  if (data.length !== count) throw new Error(`initializer '${t.name}': float_data has ${data.length} values, its dims need ${count}`);
  return Float32Array.from(data);
}

/** Replaces a FLOAT initializer's values in place (raw_data), keeping its name, dims and everything else. */
export function setFloatValues(t: OnnxTensor, values: Float32Array): void {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  t.rawData = raw;
  t.floatData = [];
}

/** A new initializer of 8-bit integers (INT8 or UINT8). */
export function int8Tensor(name: string, dims: readonly number[], values: Int8Array | Uint8Array, dataType: number = DataType.INT8): OnnxTensor {
  return { name, dataType, dims: [...dims], rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice() };
}

/** A new FLOAT16 initializer from float32 values (rounded to nearest even). */
export function float16Tensor(name: string, dims: readonly number[], values: Float32Array): OnnxTensor {
  const raw = new Uint8Array(values.length * 2);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, float32ToFloat16Bits(values[i]!), true);
  return { name, dataType: DataType.FLOAT16, dims: [...dims], rawData: raw };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * float32 to IEEE 754 half-precision bits, rounding to nearest even, overflow to infinity, subnormals kept.
 * Written here because Node 20 has no Float16Array (Math.f16round arrives in Node 24) and the conversion is
 * a dozen lines of bit arithmetic.
 */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // Inf, NaN (quiet)
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large: infinity
  if (e <= 0) {
    if (e < -10) return sign; // too small even for a subnormal: signed zero
    mantissa |= 0x800000; // the implicit leading 1
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rounded = mantissa + half - 1 + ((mantissa >>> shift) & 1);
    return sign | (rounded >>> shift);
  }
  // Round to nearest even on the 13 dropped bits; a carry may move into the exponent, which is correct.
  const rounded = mantissa + 0xfff + ((mantissa >>> 13) & 1);
  return (sign | (e << 10)) + (rounded >>> 13);
}
