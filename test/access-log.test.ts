/**
 * The access log of a real server, captured from its logger: one line per request with what identifies
 * and measures it, and nothing a client sends can make a line large.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { createModelClient, unary, type ModelServiceClient } from '../src/client/model-client';
import { serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { TensorgateServer } from '../src/server';
import { f32Tensor } from './common';

const lines: string[] = [];
let server: TensorgateServer;
let client: ModelServiceClient;

before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
      done();
    },
  });
  const config = serverConfigSchema.parse({ port: 0, httpPort: 0, workers: 1, logLevel: 'info' });
  server = new TensorgateServer(config, createLogger('info', sink));
  client = createModelClient(`127.0.0.1:${await server.start()}`);
});
after(async () => {
  client.close();
  await server.shutdown(1000);
});

const accessLines = () => lines.map((l) => JSON.parse(l)).filter((l) => l.access === true);

test('a 1 MiB model name and request id give short access-log lines', async () => {
  const name = 'n'.repeat(1 << 20);
  const before = accessLines().length;
  for (let i = 0; i < 5; i++) {
    await assert.rejects(unary(client, 'Predict', { model: name, inputs: [f32Tensor('input', [1, 64], new Float32Array(64))], options: { request_id: name } }));
  }
  const mine = accessLines().slice(before);
  assert.equal(mine.length, 5);
  for (const line of mine) {
    assert.equal(line.code, 'NOT_FOUND');
    assert.match(line.model, /^n{128}\.\.\.\(1048576 characters\)$/);
    assert.match(line.request_id, /^n{128}\.\.\.\(1048576 characters\)$/);
    assert.ok(JSON.stringify(line).length < 2048, `a ${JSON.stringify(line).length}-character access line`);
  }
});

test('a good request logs model, version, status and batch figures', async () => {
  await unary(client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], new Float32Array(64))], options: { request_id: 'r-1' } });
  const line = accessLines().find((l) => l.request_id === 'r-1');
  assert.ok(line, 'an access line for the request');
  assert.deepEqual([line.protocol, line.method, line.model, line.version, line.code, line.batch_rows], ['grpc', 'Predict', 'mlp', '1', 'OK', 1]);
});

test('a call refused before its handler (an undecodable message) is logged and counted like any other', async () => {
  const requests = async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('tensorgate_requests_total{') && l.includes('method="Predict"') && l.includes('code="INVALID_ARGUMENT"'));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const counted = await requests();
  const raw = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  try {
    const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
      raw.makeUnaryRequest('/tensorgate.v1.ModelService/Predict', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x1a, 0x10, 0x0a]), (e, v) =>
        e ? resolve(e) : reject(new Error(`unexpected success ${v}`)),
      ),
    );
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  } finally {
    raw.close();
  }
  const line = accessLines().findLast((l) => l.method === 'Predict' && l.code === 'INVALID_ARGUMENT');
  assert.ok(line, 'an access line for the refused call');
  assert.match(line.error, /not a valid tensorgate.v1.ModelService\/Predict request message/);
  assert.equal(await requests(), counted + 1, 'counted in tensorgate_requests_total');
});
