/**
 * Inputs the fuzzer (fuzz/) found to break an invariant, each kept as a test against a real server with the
 * bundled models: the client's mistake is refused as INVALID_ARGUMENT (HTTP 400) naming it, never a crash,
 * an INTERNAL or a 500.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestServer, type TestServer } from './common';
import { encode } from '../fuzz/wire';

let ts: TestServer;
let raw: grpc.Client;

before(async () => {
  ts = await startTestServer({ workers: 1 });
  raw = new grpc.Client(ts.address, grpc.credentials.createInsecure());
});

after(async () => {
  raw?.close();
  await ts?.close();
});

/** A unary call with the request as bytes (so any message can be sent), answering the status. */
function call(path: string, body: Buffer): Promise<{ code: grpc.status; details: string }> {
  const identity = (b: Buffer) => b;
  return new Promise((resolve) => {
    raw.makeUnaryRequest(path, identity, identity, body, new grpc.Metadata(), { deadline: Date.now() + 20_000 }, (err) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    );
  });
}

async function restInfer(model: string, body: unknown): Promise<{ status: number; body: { error?: string } }> {
  const res = await fetch(`http://127.0.0.1:${ts.server.httpPort}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { error?: string } };
}

// Found by the fuzzer (model-infer): the v2 datatype table was a plain object, so a datatype named like one of
// Object.prototype's members passed the lookup, and the next step read a property of undefined (INTERNAL).
test('a v2 datatype named like an Object.prototype member is INVALID_ARGUMENT, on gRPC and REST', async () => {
  for (const datatype of ['hasOwnProperty', 'constructor', '__proto__', 'toString']) {
    const body = encode('inference.ModelInferRequest', { model_name: 'mlp', inputs: [{ name: 'input', datatype, shape: [1, 64] }], raw_input_contents: [Buffer.alloc(256)] });
    const answer = await call('/inference.GRPCInferenceService/ModelInfer', body);
    assert.equal(grpc.status[answer.code], 'INVALID_ARGUMENT', `${datatype}: ${answer.details}`);
    assert.match(answer.details, new RegExp(`datatype '${datatype}' is unknown; expected one of BOOL`));

    const rest = await restInfer('mlp', { inputs: [{ name: 'input', shape: [1, 64], datatype, data: new Array(64).fill(0) }] });
    assert.equal(rest.status, 400, `${datatype}: ${rest.body.error}`);
    assert.match(rest.body.error ?? '', /is unknown; expected one of BOOL/);
  }
});

// Found reading the same kind of lookup: a parameter named 'constructor' was refused with Object's source text
// ("function Object() { [native code] }") as the reason instead of "is not understood".
test('a v2 parameter named like an Object.prototype member is refused as not understood', async () => {
  const body = encode('inference.ModelInferRequest', {
    model_name: 'mlp',
    parameters: { constructor: { bool_param: true } },
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }],
    raw_input_contents: [Buffer.alloc(256)],
  });
  const answer = await call('/inference.GRPCInferenceService/ModelInfer', body);
  assert.equal(grpc.status[answer.code], 'INVALID_ARGUMENT');
  assert.match(answer.details, /parameter 'constructor' of the request is not understood/);
});

/**
 * Two findings whose fixes lay outside the harness's files (they were known findings, fuzz/known-findings.ts,
 * while they failed): both fixed, both seen failing before.
 */

// A map<string, InferParameter> entry with a key and no value is valid protobuf (the value is the default
// message), but protobufjs decodes it to null and toObject then reads it: the request is refused as undecodable
// with a TypeError's text. Fixed: src/api/grpc/lenient-decode.ts decodes such a message again, leniently.
test('a ModelInfer parameters map entry without a value is decoded as an empty parameter', async () => {
  const valid = encode('inference.ModelInferRequest', { model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }], raw_input_contents: [Buffer.alloc(256)] });
  // Field 4 (parameters), one entry: field 1 (key) = "x", no field 2 (value).
  const entry = Buffer.from([0x22, 0x03, 0x0a, 0x01, 0x78]);
  const answer = await call('/inference.GRPCInferenceService/ModelInfer', Buffer.concat([valid, entry]));
  assert.doesNotMatch(answer.details, /Cannot read properties/);
  assert.equal(grpc.status[answer.code], 'INVALID_ARGUMENT');
  assert.match(answer.details, /parameter 'x' of the request has no value set/);
});

// repetition_penalty 8e-323 is inside the documented range (0, 10], but dividing logits by it makes them
// infinite; with min_p > 0 the filter then keeps no token (NaN probabilities), the sampler picks no token id and
// decoding throws: a 500 (OpenAI, or an internal error event once a stream began), INTERNAL on gRPC Generate.
// Fixed: src/generation/sampling.ts keeps a penalised logit within float32's finite range.
test('a subnormal repetition_penalty with min_p is refused or generates normally, never an internal error', async () => {
  const res = await fetch(`http://127.0.0.1:${ts.server.httpPort}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-lm', prompt: 'light', max_tokens: 3, min_p: 5.8e-159, repetition_penalty: 8e-323 }),
  });
  const body = (await res.json()) as { error?: { code?: string } };
  assert.ok(res.status === 200 || res.status === 400, `status ${res.status}: ${JSON.stringify(body)}`);
  assert.notEqual(body.error?.code, 'internal');
});
