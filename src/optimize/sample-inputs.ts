/**
 * Inputs for a model made from its metadata alone, the same on every machine: what `optimize` checks a new
 * version with and what `compare` runs both versions on when the user gives no inputs of their own.
 */
import { dataTypeByName, elementCount } from '../core/dtype';
import type { InferTensor, TensorSpec } from '../core/tensor';
import { SeededRandom } from '../generation/seeded-random';

/**
 * One tensor per model input: dynamic dimensions (batch and any other) get `rows`, floating-point values are
 * uniform in [-1, 1), integers 0 (the one value every integer input accepts: an index, a token id, a length).
 */
export function seededInputs(specs: readonly TensorSpec[], rows: number, seed = 14n): InferTensor[] {
  const random = new SeededRandom(seed);
  return specs.map((spec) => {
    const shape = spec.shape.map((d) => (d > 0 ? d : rows));
    const info = dataTypeByName(spec.dtype);
    if (!info?.arrayType || spec.dtype === 'STRING' || spec.dtype === 'FP16') {
      throw new Error(`input '${spec.name}' has dtype ${spec.dtype}, which seeded inputs cannot be made for; give inputs in a file`);
    }
    const values = new info.arrayType(elementCount(shape));
    if (values instanceof Float32Array || values instanceof Float64Array) for (let i = 0; i < values.length; i++) values[i] = random.next() * 2 - 1;
    return { name: spec.name, dtype: spec.dtype, shape, data: new Uint8Array(values.buffer) };
  });
}
