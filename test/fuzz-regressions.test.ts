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
