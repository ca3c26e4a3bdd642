/**
 * The REST v2 API on the HTTP port (KServe v2 / Triton HTTP, with Triton's binary tensor extension), driven by
 * a plain HTTP client: infer with JSON and with binary tensors equals ModelService Predict, every dtype
 * round-trips through JSON, metadata / health / readiness / config / statistics / repository routes answer as
 * the protocol says, and every refusal is {"error": "..."} with its HTTP status.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { addModel, copyBundledModel, f32Tensor, float32s, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';
import { IDENTITY_DTYPES, writeIdentityModel } from './fixtures/onnx-fixtures';

/** The server's max message size: the infer body limit. */
const LIMIT = 2 * 1024 * 1024;

let ts: TestServer;
let repo: ReturnType<typeof tempDir>;
let base: string;

before(async () => {
  repo = tempDir('v2-rest');
  copyBundledModel(repo.dir, 'mlp');
  addModel(repo.dir, 'identity', undefined, { 1: writeIdentityModel });
  addModel(repo.dir, 'spare', undefined, { 1: writeIdentityModel });
  ts = await startTestServer({ modelRepository: repo.dir, maxMessageBytes: LIMIT, modelControlMode: 'explicit', loadModels: ['*'] });
  base = `http://127.0.0.1:${ts.server.httpPort}/v2`;
});

after(async () => {
  await ts.close();
  repo.cleanup();
});

interface Reply {
  status: number;
  headers: Headers;
  json: any;
  bytes: Buffer;
}

async function call(path: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(`${base}${path}`, init);
  const bytes = Buffer.from(await res.arrayBuffer());
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, headers: res.headers, bytes, json: type.startsWith('application/json') && bytes.length ? JSON.parse(bytes.toString('utf8')) : undefined };
}

const post = (path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  call(path, { method: 'POST', headers, body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) });

/** A binary-extension body: the JSON header, then the tensors' bytes. */
function binaryBody(header: unknown, ...tensors: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...tensors]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(json.length) } };
}

/** A binary-extension answer split into its JSON header and its binary outputs by name. */
function splitBinary(r: Reply): { header: any; raw: Map<string, Buffer> } {
  assert.equal(r.headers.get('content-type'), 'application/octet-stream');
  const length = Number(r.headers.get('inference-header-content-length'));
  const header = JSON.parse(r.bytes.subarray(0, length).toString('utf8'));
  const raw = new Map<string, Buffer>();
  let at = length;
  for (const o of header.outputs) {
    if (o.parameters?.binary_data_size === undefined) continue;
    raw.set(o.name, r.bytes.subarray(at, at + o.parameters.binary_data_size));
    at += o.parameters.binary_data_size;
  }
  assert.equal(at, r.bytes.length, 'the binary outputs fill the rest of the body');
  return { header, raw };
}

/** An error answer: the status, and exactly {"error": "..."} matching `pattern`. */
function assertError(r: Reply, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, `status ${r.status}: ${r.bytes.toString('utf8').slice(0, 300)}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.equal(typeof r.json.error, 'string');
  assert.match(r.json.error, pattern);
}

const v2Datatype = (suffix: string) => (suffix === 'string' ? 'BYTES' : suffix.toUpperCase());

/** The identity model needs every input: one element each, in JSON, except those in `replace` (by name). */
function identityInputs(replace: ({ name: string } & Record<string, unknown>)[] = []): object[] {
  const one = (s: string) => (s === 'string' ? ['a'] : s === 'bool' ? [true] : [1]);
  const json = IDENTITY_DTYPES.map((s) => ({ name: `x_${s}`, shape: [1, 1], datatype: v2Datatype(s), data: one(s) }));
  return [...replace, ...json.filter((t) => !replace.some((r) => r.name === t.name))];
}

const mlpInput = () => seededFloats(2 * 64, 7);

async function predictMlp(values: Float32Array): Promise<Float32Array> {
  const res = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [2, 64], values)] });
  return float32s(res.outputs[0].data);
}

describe('infer', () => {
  test('JSON infer on mlp equals Predict for the same input (flat and nested data)', async () => {
    const values = mlpInput();
    const expected = await predictMlp(values);
    const flat = Array.from(values);
    const nested = [flat.slice(0, 64), flat.slice(64)];
    for (const data of [flat, nested]) {
      const r = await post('/models/mlp/infer', { id: 'req-1', parameters: { bypass_cache: true }, inputs: [{ name: 'input', shape: [2, 64], datatype: 'FP32', data }] });
      assert.equal(r.status, 200, r.bytes.toString());
      assert.equal(r.json.model_name, 'mlp');
      assert.equal(r.json.model_version, '1');
      assert.equal(r.json.id, 'req-1');
      assert.equal(r.json.outputs.length, 1);
      const out = r.json.outputs[0];
      assert.deepEqual({ name: out.name, datatype: out.datatype, shape: out.shape }, { name: 'logits', datatype: 'FP32', shape: [2, 10] });
      assert.deepEqual(Float32Array.from(out.data), expected);
    }
    // The version in the path, no id: none in the answer.
    const r = await post('/models/mlp/versions/1/infer', { inputs: [{ name: 'input', shape: [2, 64], datatype: 'FP32', data: flat }] });
    assert.equal(r.status, 200);
    assert.equal('id' in r.json, false);
    assert.deepEqual(Float32Array.from(r.json.outputs[0].data), expected);
  });

  test('binary input and binary output (tritonclient style) equal Predict', async () => {
    const values = mlpInput();
    const expected = await predictMlp(values);
    const input = Buffer.from(values.buffer);
    const { body, headers } = binaryBody(
      { parameters: { bypass_cache: true }, inputs: [{ name: 'input', shape: [2, 64], datatype: 'FP32', parameters: { binary_data_size: input.length } }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] },
      input,
    );
    const r = await post('/models/mlp/infer', body, headers);
    assert.equal(r.status, 200, r.bytes.toString());
    const { header, raw } = splitBinary(r);
    assert.deepEqual(header.outputs, [{ name: 'logits', datatype: 'FP32', shape: [2, 10], parameters: { binary_data_size: 80 } }]);
    assert.deepEqual(float32s(raw.get('logits')!), expected);

    // JSON in, binary out by the request's binary_data_output; an output's binary_data false keeps it JSON.
    const all = await post('/models/mlp/infer', { parameters: { binary_data_output: true }, inputs: [{ name: 'input', shape: [2, 64], datatype: 'FP32', data: Array.from(values) }] });
    assert.deepEqual(float32s(splitBinary(all).raw.get('logits')!), expected);
    const jsonOut = await post('/models/mlp/infer', {
      parameters: { binary_data_output: true },
      inputs: [{ name: 'input', shape: [2, 64], datatype: 'FP32', data: Array.from(values) }],
      outputs: [{ name: 'logits', parameters: { binary_data: false } }],
    });
    assert.equal(jsonOut.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.deepEqual(Float32Array.from(jsonOut.json.outputs[0].data), expected);
  });

  test('identity model: every dtype round-trips through JSON (BYTES as strings, 64-bit beyond 2^53 as strings)', async () => {
    const data: Record<(typeof IDENTITY_DTYPES)[number], unknown[]> = {
      fp32: [0, 1.5, -2.25, 1024, 0.125, -0.5],
      fp64: [0.1, -1e300, 5e-324, 3.141592653589793, 0, 2.5],
      fp16: [0.5, -2, 1024, 0.25, 65504, -0.125],
      int8: [-128, 127, 0, 1, -1, 5],
      int16: [-32768, 32767, 0, 1, -1, 300],
      int32: [-2147483648, 2147483647, 0, 1, -1, 70000],
      int64: ['-9223372036854775808', '9223372036854775807', Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0, 42],
      uint8: [0, 255, 1, 2, 3, 128],
      uint16: [0, 65535, 1, 2, 3, 40000],
      uint32: [0, 4294967295, 1, 2, 3, 3000000000],
      uint64: ['18446744073709551615', '9007199254740993', Number.MAX_SAFE_INTEGER, 0, 1, 2],
      bool: [true, false, true, true, false, false],
      string: ['', 'a', 'héllo', '😀', 'x'.repeat(100), 'z'],
    };
    const datatype = v2Datatype;
    const inputs = IDENTITY_DTYPES.map((s, i) => ({
      name: `x_${s}`,
      shape: [2, 3],
      datatype: datatype(s),
      // Half the tensors nested row-major, half flat.
      data: i % 2 ? [data[s].slice(0, 3), data[s].slice(3)] : data[s],
    }));
    const r = await post('/models/identity/infer', { inputs });
    assert.equal(r.status, 200, r.bytes.toString());
    assert.equal(r.json.outputs.length, IDENTITY_DTYPES.length);
    for (const s of IDENTITY_DTYPES) {
      const out = r.json.outputs.find((o: { name: string }) => o.name === `y_${s}`);
      assert.ok(out, `y_${s}`);
      assert.equal(out.datatype, datatype(s));
      assert.deepEqual(out.shape, [2, 3]);
      assert.deepEqual(out.data, data[s], s);
    }
  });

  test('float NaN and infinities travel as the strings "NaN", "Infinity", "-Infinity" (JSON has none)', async () => {
    const special = ['NaN', 'Infinity', '-Infinity'];
    const inputs = identityInputs(['fp16', 'fp32', 'fp64'].map((s) => ({ name: `x_${s}`, shape: [1, 3], datatype: s.toUpperCase(), data: special })));
    const r = await post('/models/identity/infer', { inputs, outputs: ['fp16', 'fp32', 'fp64'].map((s) => ({ name: `y_${s}` })) });
    assert.equal(r.status, 200, r.bytes.toString());
    for (const out of r.json.outputs) assert.deepEqual(out.data, special, out.name);
  });

  test('binary and JSON inputs mixed in one request; BYTES binary in and out (length-prefixed)', async () => {
    const strings = ['', 'héllo', '😀', 'tensor'];
    const encoded = Buffer.concat(strings.map((s) => {
      const b = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return Buffer.concat([len, b]);
    }));
    const ints = Buffer.from(new Int32Array([1, -2, 3, -4]).buffer);
    const { body, headers } = binaryBody(
      {
        inputs: identityInputs([
          { name: 'x_string', shape: [2, 2], datatype: 'BYTES', parameters: { binary_data_size: encoded.length } },
          { name: 'x_fp32', shape: [1, 2], datatype: 'FP32', data: [1, 2] },
          { name: 'x_int32', shape: [2, 2], datatype: 'INT32', parameters: { binary_data_size: ints.length } },
        ]),
        outputs: [{ name: 'y_string', parameters: { binary_data: true } }, { name: 'y_fp32' }, { name: 'y_int32', parameters: { binary_data: true } }],
      },
      encoded,
      ints,
    );
    const r = await post('/models/identity/infer', body, headers);
    assert.equal(r.status, 200, r.bytes.toString());
    const { header, raw } = splitBinary(r);
    // In the order asked for; the JSON output has data, the binary ones their sizes.
    assert.deepEqual(header.outputs.map((o: { name: string }) => o.name), ['y_string', 'y_fp32', 'y_int32']);
    assert.deepEqual(header.outputs[1].data, [1, 2]);
    assert.deepEqual(raw.get('y_string'), encoded);
    assert.deepEqual(raw.get('y_int32'), ints);
  });
});

describe('metadata, health, configuration, statistics, repository', () => {
  test('server metadata, liveness and readiness', async () => {
    for (const path of ['', '/']) {
      const meta = await call(path);
      assert.equal(meta.status, 200);
      assert.equal(meta.json.name, 'tensorgate');
      assert.ok(meta.json.extensions.includes('binary_tensor_data'));
    }
    assert.equal((await call('/health/live')).status, 200);
    assert.equal((await call('/health/ready')).status, 200);
  });

  test('model metadata, readiness (400 when not ready) and config', async () => {
    const meta = await call('/models/mlp');
    assert.equal(meta.status, 200);
    assert.deepEqual(meta.json, {
      name: 'mlp',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 64] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }],
    });
    assert.deepEqual((await call('/models/mlp/versions/1')).json, meta.json);
    assertError(await call('/models/nope'), 404, /model 'nope'/);
    assertError(await call('/models/mlp/versions/9'), 404, /version/);

    assert.equal((await call('/models/mlp/ready')).status, 200);
    assert.equal((await call('/models/mlp/versions/1/ready')).status, 200);
    assert.equal((await call('/models/nope/ready')).status, 400);
    assert.equal((await call('/models/mlp/versions/9/ready')).status, 400);

    const config = await call('/models/mlp/config');
    assert.equal(config.status, 200);
    assert.equal(config.json.name, 'mlp');
    assert.equal(config.json.max_batch_size, 256);
    assert.deepEqual(config.json.input, [{ name: 'input', data_type: 'TYPE_FP32', dims: [64] }]);
    assert.deepEqual((await call('/models/mlp/versions/1/config')).json, config.json);
    assertError(await call('/models/nope/config'), 404, /nope/);
  });

  test('statistics count the infer requests made, successes and failures', async () => {
    const stats = async (path: string) => {
      const r = await call(path);
      assert.equal(r.status, 200);
      return r.json.model_stats.find((s: { name: string }) => s.name === 'identity').inference_stats;
    };
    const before = await stats('/models/identity/stats');
    for (let i = 0; i < 3; i++) assert.equal((await post('/models/identity/infer', { inputs: identityInputs() })).status, 200);
    const wrong = identityInputs([{ name: 'x_fp32', shape: [1, 2], datatype: 'FP32', data: [1] }]);
    assert.equal((await post('/models/identity/infer', { inputs: wrong })).status, 400);
    for (const path of ['/models/identity/stats', '/models/identity/versions/1/stats', '/models/stats']) {
      const now = await stats(path);
      assert.equal(now.success.count - before.success.count, 3, path);
      assert.equal(now.fail.count - before.fail.count, 1, path);
    }
    // The same calls reach the request metrics under the route's template.
    const metrics = await (await fetch(`http://127.0.0.1:${ts.server.httpPort}/metrics`)).text();
    assert.match(metrics, /tensorgate_requests_total\{protocol="http",method="POST \/v2\/models\/\{name\}\/infer",model="identity",version="1",code="OK"\} [3-9]/);
    const all = await call('/models/stats');
    assert.ok(all.json.model_stats.some((s: { name: string }) => s.name === 'mlp'));
    assertError(await call('/models/nope/stats'), 404, /nope/);
  });

  test('repository index, and unload / load of a model', async () => {
    for (const body of [undefined, {}, { ready: true }]) {
      const r = body === undefined ? await call('/repository/index', { method: 'POST' }) : await post('/repository/index', body);
      assert.equal(r.status, 200);
      assert.deepEqual(
        r.json.filter((e: { name: string }) => e.name === 'mlp'),
        [{ name: 'mlp', version: '1', state: 'READY' }],
      );
    }
    assertError(await post('/repository/index', { ready: 'yes' }), 400, /ready/);
    assertError(await post('/repository/index', { readyOnly: true }), 400, /unknown field 'readyOnly'/);

    const unload = await call('/repository/models/spare/unload', { method: 'POST' });
    assert.equal(unload.status, 200, unload.bytes.toString());
    assert.deepEqual(unload.json, {});
    assert.equal((await call('/models/spare/ready')).status, 400);
    const index = await post('/repository/index', {});
    assert.deepEqual(index.json.find((e: { name: string }) => e.name === 'spare'), { name: 'spare', state: 'UNAVAILABLE', reason: 'unloaded' });
    assert.equal((await post('/repository/index', { ready: true })).json.some((e: { name: string }) => e.name === 'spare'), false);

    const load = await post('/repository/models/spare/load', {});
    assert.equal(load.status, 200, load.bytes.toString());
    assert.equal((await call('/models/spare/ready')).status, 200);
    assertError(await post('/repository/models/spare/load', { parameters: { config: '{}' } }), 400, /parameters are not supported.*'config'/);
    assertError(await call('/repository/models/no-such-folder/load', { method: 'POST' }), 404, /no-such-folder/);
  });
});

describe('errors', () => {
  const infer = (body: unknown, model = 'mlp') => post(`/models/${model}/infer`, body);
  const mlp = (extra: object = {}) => ({ name: 'input', shape: [1, 64], datatype: 'FP32', data: new Array(64).fill(0), ...extra });

  test('unknown model 404, unknown version 404', async () => {
    assertError(await infer({ inputs: [mlp()] }, 'nope'), 404, /model 'nope' not found/);
    assertError(await post('/models/mlp/versions/7/infer', { inputs: [mlp()] }), 404, /version/);
  });

  test('bad datatype, wrong element count, bad shape: 400 naming the input', async () => {
    assertError(await infer({ inputs: [mlp({ datatype: 'FP128' })] }), 400, /input 'input': datatype 'FP128' is unknown/);
    assertError(await infer({ inputs: [mlp({ data: [1, 2, 3] })] }), 400, /input 'input': data has 3 elements; its shape needs 64/);
    assertError(await infer({ inputs: [mlp({ data: new Array(64).fill('x') })] }), 400, /element 0 is 'x'; FP32 elements are numbers/);
    assertError(await infer({ inputs: [mlp({ shape: [1, '64'] })] }), 400, /^inputs\[0\]\.shape\[1\]: .*number/);
    assertError(await infer({ inputs: [mlp({ shape: [1, -64] })] }), 400, /shape dim 1/);
    assertError(await infer({ inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32' }] }), 400, /input 'input' has no data/);
    assertError(await infer({ inputs: [mlp({ contents: {} })] }), 400, /inputs\[0\]: unknown field 'contents'/);
    assertError(await infer({ input: [mlp()] }), 400, /^inputs is missing/);
    assertError(await infer([mlp()]), 400, /must be a JSON object/);
  });

  test('binary extension: header length and binary sizes that do not add up are 400 saying what was expected', async () => {
    const bytes = Buffer.alloc(256);
    const header = (size: number) => ({ inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32', parameters: { binary_data_size: size } }] });
    // binary_data_size says 100, 256 bytes follow
    let b = binaryBody(header(100), bytes);
    assertError(await post('/models/mlp/infer', b.body, b.headers), 400, /256 bytes after the \d+-byte inference header; the inputs' binary_data_size add up to 100/);
    // the sizes agree but the tensor needs 256 bytes
    b = binaryBody(header(100), bytes.subarray(0, 100));
    assertError(await post('/models/mlp/infer', b.body, b.headers), 400, /raw contents have 100 bytes; its shape needs 64 FP32 elements of 4 bytes = 256/);
    // header length past the end, zero, not a number
    for (const value of [String(b.body.length + 1), '0', 'abc', '-5']) {
      assertError(await post('/models/mlp/infer', b.body, { ...b.headers, 'inference-header-content-length': value }), 400, /Inference-Header-Content-Length is/);
    }
    // header length cutting the JSON short
    assertError(await post('/models/mlp/infer', b.body, { ...b.headers, 'inference-header-content-length': '10' }), 400, /inference header is not valid JSON/);
    // binary_data_size without the header
    assertError(await post('/models/mlp/infer', JSON.stringify(header(256))), 400, /binary_data_size but the request has no Inference-Header-Content-Length/);
    // binary bytes but no input takes them
    b = binaryBody({ inputs: [mlp()] }, bytes);
    assertError(await post('/models/mlp/infer', b.body, b.headers), 400, /no input has binary_data_size/);
    // both data and binary_data_size
    b = binaryBody({ inputs: [mlp({ parameters: { binary_data_size: 256 } })] }, bytes);
    assertError(await post('/models/mlp/infer', b.body, b.headers), 400, /both data and parameters.binary_data_size/);
  });

  test('malformed JSON, an empty body, unknown and unsupported parameters: 400', async () => {
    assertError(await post('/models/mlp/infer', '{"inputs": ['), 400, /request body is not valid JSON/);
    assertError(await post('/models/mlp/infer', '{"__proto__": {"x": 1}, "inputs": []}'), 400, /"__proto__" is not allowed/);
    assertError(await post('/models/mlp/infer', ''), 400, /body is empty/);
    assertError(await infer({ parameters: { colour: 'red' }, inputs: [mlp()] }), 400, /parameter 'colour' of the request is not understood/);
    assertError(await infer({ inputs: [mlp({ parameters: { colour: 1 } })] }), 400, /parameter 'colour' of input 'input' is not understood/);
    assertError(await infer({ inputs: [mlp()], outputs: [{ name: 'logits', parameters: { classification: 3 } }] }), 400, /classification extension is not supported/);
    assertError(await infer({ parameters: { binary_data_output: 'yes' }, inputs: [mlp()] }), 400, /binary_data_output.*true or false/);
    assertError(await infer({ parameters: { nested: { a: 1 } }, inputs: [mlp()] }), 400, /^parameters\.nested: /);
    assertError(await post('/models/mlp/infer', '{}', { 'content-type': 'application/json', 'content-encoding': 'gzip' }), 415, /Content-Encoding 'gzip' is not supported/);
  });

  test('unknown routes under /v2 are 404, a known path with another method 405, in the same shape', async () => {
    assertError(await call('/nothing/here'), 404, /no route for \/v2\/nothing\/here; the v2 API serves GET \/v2, .*POST \/v2\/models\/\{name\}\[\/versions\/\{version\}\]\/infer/);
    assertError(await call('/models/mlp/infer'), 405, /allowed: POST/);
  });

  test('a body over the limit is refused 413 before it is read', async () => {
    // Announce one byte over the limit, send a few bytes, and never the rest: the answer comes anyway.
    const req = http.request({ host: '127.0.0.1', port: ts.server.httpPort, method: 'POST', path: '/v2/models/mlp/infer', headers: { 'content-type': 'application/json', 'content-length': String(LIMIT + 1) } });
    req.on('error', () => undefined); // the server closes the connection once it has answered
    req.write('{"inputs": [');
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    req.destroy();
    assert.equal(res.statusCode, 413);
    assert.equal(res.headers.connection, 'close');
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    assert.deepEqual(Object.keys(body), ['error']);
    assert.match(body.error, new RegExp(`over the limit of ${LIMIT} bytes`));
    // The server still answers.
    assert.equal((await call('/health/live')).status, 200);
  });
});
