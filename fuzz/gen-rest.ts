/**
 * REST /v2 inputs: POST /v2/models/{m}[/versions/{v}]/infer bodies (JSON `data`, or Triton's binary tensor
 * extension with Inference-Header-Content-Length and binary_data_size, sizes right or wrong), and the other /v2
 * routes (metadata, ready, config, stats, repository index; load/unload only of models that do not exist, so
 * the other targets keep their models) with wrong methods and odd paths.
 */
import fc from 'fast-check';
import type { Case } from './case';
import { BAD_UTF8_MARK } from './gen-common';
import { REQUEST_PARAMETER_NAMES, outputsArb, parametersArb, v2TensorArb, type V2Tensor } from './gen-infer';
import { contentTypeArb, deepArray, extraHeadersArb, httpCase, mutateObjectArb, pathSegmentArb, serialiseArb } from './gen-http';
import { MODEL_NAMES, perModel, TENSOR_MODELS, type FuzzModel } from './models';

/** JSON `data` for a tensor: flat or nested by the shape, with non-finite floats as the strings the protocol allows. */
function jsonData(t: V2Tensor, nest: boolean, deep: number): unknown {
  const values = t.values.map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
  if (deep > 0) return JSON.parse(deepArray(deep));
  if (!nest || t.shape.length < 2) return values;
  const last = Number(t.shape[t.shape.length - 1]);
  const inner = Number.isSafeInteger(last) && last > 0 ? last : 1;
  const rows: unknown[] = [];
  for (let i = 0; i < values.length; i += inner) rows.push(values.slice(i, i + inner));
  return rows;
}

function inferBodyArb(m: FuzzModel): fc.Arbitrary<Case> {
  return fc
    .record({
      model: pathSegmentArb([m.name]),
      version: fc.oneof({ weight: 8, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('1', '2', 'x', '%31') }),
      id: fc.option(fc.oneof(fc.string({ maxLength: 8 }), fc.constant(BAD_UTF8_MARK), fc.constant(7)), { nil: undefined }),
      parameters: parametersArb(REQUEST_PARAMETER_NAMES).map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Object.values(v)[0] ?? null]))),
      inputs: fc.oneof({ weight: 10, arbitrary: v2TensorArb(m).map((t) => [t]) }, { weight: 1, arbitrary: fc.array(v2TensorArb(m), { maxLength: 3 }) }),
      outputs: outputsArb(m, ['binary_data', 'x']).map((os) =>
        os.map((o) => ({ name: o.name, parameters: Object.fromEntries(Object.entries(o.parameters).map(([k, v]) => [k, Object.values(v as object)[0] ?? null])) })),
      ),
      binary: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 2, arbitrary: fc.constant(true) }),
      nest: fc.boolean(),
      deep: fc.oneof({ weight: 30, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 800 }) }),
      sizeLie: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1, 1000, -5) }),
      headerLie: fc.oneof({ weight: 12, arbitrary: fc.constant<string | number>(0) }, { weight: 1, arbitrary: fc.constantFrom<string | number>(1, -1, 100000, 'abc', '', ' 5', '1e3') }),
      mutate: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      contentType: contentTypeArb,
      headers: extraHeadersArb,
    })
    .chain((r) => {
      const inputs = r.inputs.map((t) => {
        const head = { name: t.name, shape: t.shape.map((d) => (typeof d === 'string' ? Number(d) : d)), datatype: t.datatype };
        if (!r.binary) return { ...head, data: jsonData(t, r.nest, r.deep) };
        return { ...head, parameters: { binary_data_size: t.raw.length + r.sizeLie } };
      });
      const body = { ...(r.id !== undefined ? { id: r.id } : {}), parameters: r.parameters, inputs, ...(r.outputs.length ? { outputs: r.outputs } : {}) };
      const path = `/v2/models/${r.model}${r.version ? `/versions/${r.version}` : ''}/infer`;
      const shaped = r.mutate ? mutateObjectArb(body) : fc.constant(body as Record<string, unknown>);
      return shaped.chain(serialiseArb).map((json) => {
        if (!r.binary) return httpCase('POST', path, json, r.contentType, r.headers);
        const length = r.headerLie === 0 ? String(json.length) : typeof r.headerLie === 'number' ? String(json.length + r.headerLie) : r.headerLie;
        const bytes = Buffer.concat([json, ...r.inputs.map((t) => t.raw)]);
        return httpCase('POST', path, bytes, r.contentType === 'application/json' ? 'application/octet-stream' : r.contentType, { ...r.headers, 'inference-header-content-length': length });
      });
    });
}

const name = pathSegmentArb(MODEL_NAMES);
const version = fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('/versions/1', '/versions/2', '/versions/x', '/versions/') });

/** The other /v2 routes, right and wrong methods, and a few paths that are not routes. */
const otherRoutesArb: fc.Arbitrary<Case> = fc
  .record({
    route: fc.constantFrom('', '/health/live', '/health/ready', '/models/stats', 'model', 'model/ready', 'model/config', 'model/stats', 'index', 'load', 'unload', 'junk'),
    name,
    version,
    wrongMethod: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    body: fc.oneof(
      { weight: 4, arbitrary: fc.constant<Record<string, unknown> | undefined>(undefined) },
      { weight: 2, arbitrary: fc.constantFrom<Record<string, unknown>>({}, { ready: true }, { ready: false }, { parameters: {} }, { parameters: { config: '{}' } }) },
      { weight: 1, arbitrary: fc.constantFrom<Record<string, unknown>>({ ready: 'yes' }, { parameters: [] }, { x: 1 }).chain(mutateObjectArb) },
    ),
    contentType: contentTypeArb,
    headers: extraHeadersArb,
    junk: fc.constantFrom('/v2/', '/v2/models', '/v2/models/', '/v2//models/mlp', '/v2/models/mlp/infer/x', '/v2/./models/mlp', '/v2/models/mlp?x=%zz', '/v2/repository/models/x', '/v1/models/mlp/infer'),
  })
  .chain((r) => {
    let path: string;
    let method = 'GET';
    if (r.route === 'junk') path = r.junk;
    else if (r.route.startsWith('model')) path = `/v2/models/${r.name}${r.version}${r.route.slice(5)}`;
    else if (r.route === 'index') [path, method] = ['/v2/repository/index', 'POST'];
    // Load/unload only names no bundled model has: unloading mlp would change what every other target sees.
    else if (r.route === 'load' || r.route === 'unload') [path, method] = [`/v2/repository/models/fuzz-${r.name.slice(0, 40)}/${r.route}`, 'POST'];
    else path = `/v2${r.route}`;
    if (r.wrongMethod) method = method === 'GET' ? 'POST' : 'GET';
    if (method === 'GET' && r.body === undefined) return fc.constant(httpCase(method, path, Buffer.alloc(0), undefined, {}));
    return serialiseArb(r.body ?? {}).map((b) => httpCase(method, path, b, r.contentType, r.headers));
  });

export const restInferArb: fc.Arbitrary<Case> = fc.constantFrom(...TENSOR_MODELS).chain(perModel(TENSOR_MODELS, inferBodyArb));
export const restOtherArb: fc.Arbitrary<Case> = otherRoutesArb;
