/**
 * config.yaml `warmup`: runs every new session makes, in every worker, before its version takes a request
 * (Triton's model_warmup). The first runs of an ONNX Runtime session pay for memory arenas and kernel choices;
 * without a warm-up the first requests after a load or reload pay instead. A version whose warm-up fails is
 * UNAVAILABLE and never takes traffic (on a reload, its previous load keeps serving).
 *
 * @example
 * ```yaml
 * warmup:
 *   - name: one-row
 *     count: 2
 *     inputs:
 *       input: { dtype: FP32, shape: [1, 64], data: random }   # zero | random | file (raw little-endian bytes)
 * ```
 */
import * as path from 'node:path';
import { z } from 'zod';
import { DATA_TYPE_NAMES, dataTypeByName, elementCount, type DataTypeName } from '../core/dtype';
import { float32ToFloat16Bits } from '../core/tensor-values';
import type { WarmupRun } from '../runtime/messages';
import { readConfined } from './confined-path';

const warmupInput = z
  .strictObject({
    dtype: z.enum(DATA_TYPE_NAMES as [DataTypeName, ...DataTypeName[]]),
    /** The whole shape, batch dim included; every dim a size (no -1). */
    shape: z.array(z.number().int().min(0)).max(32),
    data: z.enum(['zero', 'random', 'file']).default('zero'),
    /** data: file: raw little-endian element bytes, relative to the model folder (e.g. warmup/input.bin). */
    file: z.string().min(1).optional(),
  })
  .superRefine((i, ctx) => {
    if (i.data === 'file' && !i.file) ctx.addIssue({ code: 'custom', path: ['file'], message: 'data: file needs file: PATH (relative to the model folder)' });
    if (i.data !== 'file' && i.file) ctx.addIssue({ code: 'custom', path: ['file'], message: 'file is only read with data: file' });
    if (i.file && (path.isAbsolute(i.file) || i.file.split(/[\\/]/).includes('..'))) {
      ctx.addIssue({ code: 'custom', path: ['file'], message: `'${i.file}' leaves the model folder; give a path inside it` });
    }
    if (i.data === 'file' && i.dtype === 'STRING') ctx.addIssue({ code: 'custom', path: ['data'], message: 'STRING inputs warm up with zero (empty strings) or random data' });
    const unsupported = dataTypeByName(i.dtype)?.unsupported;
    if (unsupported) ctx.addIssue({ code: 'custom', path: ['dtype'], message: unsupported });
  });

export const warmupSchema = z.array(
  z.strictObject({
    name: z.string().min(1).default('warmup'),
    count: z.number().int().min(1).max(1000).default(1),
    inputs: z.record(z.string().min(1), warmupInput),
  }),
);

export type WarmupConfig = z.infer<typeof warmupSchema>;

/**
 * The warm-up runs of a model folder's config, their data made or read; throws with the file's problem. Data files
 * are read only from inside the repository `root` (a realRoot()): a symlink out of it is refused (confined-path.ts).
 */
export async function warmupRuns(root: string, modelDir: string, config: WarmupConfig | undefined): Promise<WarmupRun[]> {
  const runs: WarmupRun[] = [];
  for (const w of config ?? []) {
    const inputs = [];
    for (const [name, i] of Object.entries(w.inputs)) {
      const count = elementCount(i.shape);
      if (i.dtype === 'STRING') {
        const strings = Array.from({ length: count }, (_, k) => (i.data === 'random' ? randomWord(k) : ''));
        inputs.push({ name, dtype: i.dtype, shape: i.shape, buffer: new ArrayBuffer(0), strings });
        continue;
      }
      const bytes = count * dataTypeByName(i.dtype)!.byteSize;
      let buffer: ArrayBuffer;
      if (i.data === 'file') {
        const file = path.join(modelDir, i.file!);
        const data = await readConfined(root, file, `warm-up file '${i.file}'`).catch((err: Error) => {
          throw new Error(`warm-up '${w.name}' input '${name}': cannot read ${i.file}: ${err.message}`);
        });
        if (data.length !== bytes) {
          throw new Error(`warm-up '${w.name}' input '${name}': ${i.file} has ${data.length} bytes; shape [${i.shape.join(', ')}] of ${i.dtype} needs ${bytes}`);
        }
        buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.length) as ArrayBuffer;
      } else {
        buffer = new ArrayBuffer(bytes);
        if (i.data === 'random') fillRandom(i.dtype, new DataView(buffer), count);
      }
      inputs.push({ name, dtype: i.dtype, shape: i.shape, buffer });
    }
    runs.push({ name: w.name, count: w.count, inputs });
  }
  return runs;
}

/** Floats uniform in [0, 1), integers 0..9 (small enough for most index inputs), BOOL 0/1: seeded, so every load warms up alike. */
function fillRandom(dtype: DataTypeName, view: DataView, count: number): void {
  let seed = 0x2545f491;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  const size = dataTypeByName(dtype)!.byteSize;
  for (let k = 0; k < count; k++) {
    const o = k * size;
    const small = Math.floor(next() * 10);
    switch (dtype) {
      case 'FP32': view.setFloat32(o, next(), true); break;
      case 'FP64': view.setFloat64(o, next(), true); break;
      case 'FP16': view.setUint16(o, float32ToFloat16Bits(next()), true); break;
      case 'BOOL': view.setUint8(o, small & 1); break;
      case 'INT64': view.setBigInt64(o, BigInt(small), true); break;
      case 'UINT64': view.setBigUint64(o, BigInt(small), true); break;
      default:
        if (size === 1) view.setUint8(o, small);
        else if (size === 2) view.setUint16(o, small, true);
        else view.setUint32(o, small, true);
    }
  }
}

function randomWord(k: number): string {
  return ['alpha', 'beta', 'gamma', 'delta', 'epsilon'][k % 5]!;
}
