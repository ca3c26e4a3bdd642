/**
 * tensorgate.v1.ModelService/Predict inputs: a request one of the bundled models accepts (tensors, or text for
 * the sentiment pipeline), then structural faults (tensors dropped or duplicated, wrong dtypes, shapes that
 * disagree with the bytes, string_data on numbers, huge and tiny timeouts, overlong names, invalid UTF-8),
 * then maybe wire-level junk or byte mutations of the encoding.
 */
import fc from 'fast-check';
import { b64, type Case } from './case';
import { BAD_UTF8_MARK, countOf, dtypeArb, elementBytesArb, nameArb, resizeArb, shapeArb, sometimes, V1_DTYPES } from './gen-common';
import { MODEL_NAMES, perModel, TENSOR_MODELS, type FuzzModel } from './models';
import { bodyArb, deadlineArb } from './wire';

const PATH = '/tensorgate.v1.ModelService/Predict';

function tensorArb(m: FuzzModel): fc.Arbitrary<Record<string, unknown>> {
  const head = fc.record({ name: nameArb([m.input]), dtype: dtypeArb(m.dtype, V1_DTYPES), shape: shapeArb(m.shape) });
  return head.chain((t): fc.Arbitrary<Record<string, unknown>> => {
    const count = countOf(t.shape);
    const dtype = t.dtype === 'STRING' ? m.dtype : t.dtype;
    return fc
      .tuple(
        elementBytesArb(dtype, count),
        fc.oneof({ weight: 30, arbitrary: fc.constant('right') }, { weight: 2, arbitrary: fc.constant('resize') }, { weight: 1, arbitrary: fc.constant('strings') }),
      )
      .chain(([data, how]): fc.Arbitrary<Record<string, unknown>> => {
        if (how === 'resize') return resizeArb(data).map((d) => ({ ...t, data: d }));
        if (how === 'strings' || t.dtype === 'STRING') {
          return fc.array(fc.oneof(fc.string({ maxLength: 8 }), fc.constant(BAD_UTF8_MARK)), { maxLength: 6 }).map((s) => ({ ...t, string_data: s }));
        }
        return fc.constant({ ...t, data });
      });
  });
}

const optionsArb = fc.record(
  {
    request_id: fc.oneof(fc.string({ maxLength: 16 }), fc.integer({ min: 129, max: 5000 }).map((n) => 'r'.repeat(n))),
    priority: fc.oneof(fc.constantFrom(0, 1, 2, 16, 17, 4294967295), fc.nat()),
    // uint64 microseconds: 1 expires at once; 2^64-1 must not overflow a timer.
    timeout_us: fc.constantFrom('0', '1', '1000', '20000000', '9007199254740993', '18446744073709551615', '9223372036854775807'),
    bypass_cache: fc.boolean(),
  },
  { requiredKeys: [] },
);

function requestArb(m: FuzzModel): fc.Arbitrary<Record<string, unknown>> {
  const tensor = tensorArb(m);
  const inputs = fc.oneof(
    { weight: 10, arbitrary: tensor.map((t) => [t]) },
    { weight: 1, arbitrary: fc.constant([]) },
    { weight: 1, arbitrary: fc.array(tensor, { minLength: 2, maxLength: 4 }) },
  );
  const text = fc.oneof(
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.constant(`good ${BAD_UTF8_MARK} bad`),
    fc.integer({ min: 65_000, max: 70_000 }).map((n) => 'a '.repeat(n)),
  );
  const textOnly = m.text ? { weight: 4, arbitrary: text.map((input_text) => ({ input_text, inputs: [] as unknown[] })) } : { weight: 0, arbitrary: fc.constant({}) };
  return fc
    .tuple(
      nameArb(m.text ? [m.name] : [m.name, m.name, m.name, ...MODEL_NAMES]),
      fc.oneof({ weight: 10, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('1', '2', '0', '-1', '99999999999999999999', 'latest') }),
      fc.oneof({ weight: 8, arbitrary: inputs.map((i) => ({ inputs: i })) }, textOnly, { weight: 1, arbitrary: fc.tuple(inputs, text).map(([i, t]) => ({ inputs: i, input_text: t })) }),
      fc.oneof({ weight: 8, arbitrary: fc.constant([]) }, { weight: 2, arbitrary: fc.array(nameArb(m.outputs, 6), { minLength: 1, maxLength: 3 }) }),
      sometimes(optionsArb, 3),
    )
    .map(([model, version, body, outputs, options]) => ({ model, version, ...body, outputs, ...(options ? { options } : {}) }));
}

export const predictArb: fc.Arbitrary<Case> = fc
  .tuple(bodyArb('tensorgate.v1.PredictRequest', fc.constantFrom(...TENSOR_MODELS).chain(perModel(TENSOR_MODELS, requestArb))), deadlineArb)
  .map(([body, deadlineMs]) => ({ kind: 'grpc-unary', path: PATH, body: b64(body), ...(deadlineMs !== undefined ? { deadlineMs } : {}) }));
