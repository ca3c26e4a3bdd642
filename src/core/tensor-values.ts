/**
 * Converts between plain JS values and the little-endian bytes tensors travel as. Used by the CLI client
 * and by tests; the server itself never converts per element.
 */
import { dataTypeByName, type DataTypeName } from './dtype';

export type TensorValue = number | bigint | boolean;

/** float32 -> IEEE half bits (round to nearest even), for FP16 tensors. */
export function float32ToFloat16Bits(value: number): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return half;
}

export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function valuesToBytes(dtype: DataTypeName, values: readonly TensorValue[]): Uint8Array {
  const info = dataTypeByName(dtype);
  if (!info?.arrayType) throw new Error(`dtype ${dtype} has no byte encoding`);
  const n = values.length;
  const buffer = new ArrayBuffer(n * info.byteSize);
  const view = new DataView(buffer);
  values.forEach((v, i) => {
    const o = i * info.byteSize;
    switch (dtype) {
      case 'FP32': view.setFloat32(o, Number(v), true); break;
      case 'FP64': view.setFloat64(o, Number(v), true); break;
      case 'FP16': view.setUint16(o, float32ToFloat16Bits(Number(v)), true); break;
      case 'INT8': view.setInt8(o, Number(v)); break;
      case 'INT16': view.setInt16(o, Number(v), true); break;
      case 'INT32': view.setInt32(o, Number(v), true); break;
      case 'INT64': view.setBigInt64(o, BigInt(v), true); break;
      case 'UINT8': view.setUint8(o, Number(v)); break;
      case 'UINT16': view.setUint16(o, Number(v), true); break;
      case 'UINT32': view.setUint32(o, Number(v), true); break;
      case 'UINT64': view.setBigUint64(o, BigInt(v), true); break;
      case 'BOOL': view.setUint8(o, v ? 1 : 0); break;
      default: throw new Error(`dtype ${dtype} has no byte encoding`);
    }
  });
  return new Uint8Array(buffer);
}

export function bytesToValues(dtype: DataTypeName, bytes: Uint8Array): TensorValue[] {
  const info = dataTypeByName(dtype);
  if (!info?.arrayType) throw new Error(`dtype ${dtype} has no byte encoding`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: TensorValue[] = [];
  for (let o = 0; o + info.byteSize <= bytes.byteLength; o += info.byteSize) {
    switch (dtype) {
      case 'FP32': out.push(view.getFloat32(o, true)); break;
      case 'FP64': out.push(view.getFloat64(o, true)); break;
      case 'FP16': out.push(float16BitsToFloat32(view.getUint16(o, true))); break;
      case 'INT8': out.push(view.getInt8(o)); break;
      case 'INT16': out.push(view.getInt16(o, true)); break;
      case 'INT32': out.push(view.getInt32(o, true)); break;
      case 'INT64': out.push(view.getBigInt64(o, true)); break;
      case 'UINT8': out.push(view.getUint8(o)); break;
      case 'UINT16': out.push(view.getUint16(o, true)); break;
      case 'UINT32': out.push(view.getUint32(o, true)); break;
      case 'UINT64': out.push(view.getBigUint64(o, true)); break;
      case 'BOOL': out.push(view.getUint8(o) !== 0); break;
      default: throw new Error(`dtype ${dtype} has no byte encoding`);
    }
  }
  return out;
}
