/**
 * grpc.health.v1: NOT_SERVING while models load, SERVING once loaded, NOT_SERVING while draining;
 * Check and Watch, overall ("") and per service.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { TensorgateServer } from '../src/server';
import { expectStatus } from './common';
import { check, healthClient, watch } from './health-client';

/** A server on ephemeral ports with the bundled models, not yet listening. */
function newServer(): TensorgateServer {
  const config = serverConfigSchema.parse({ port: 0, httpPort: 0, workers: 1, logLevel: 'silent' });
  return new TensorgateServer(config, createLogger('silent'));
}

test('health: NOT_SERVING while loading, SERVING when loaded, NOT_SERVING when draining', async () => {
  const server = newServer();
  const port = await server.listen();
  const client = healthClient(`127.0.0.1:${port}`);
  try {
    assert.equal(await check(client, ''), 'NOT_SERVING');
    const overall = watch(client, '');
    const perService = watch(client, 'tensorgate.v1.ModelService');
    assert.equal(await overall.next(), 'NOT_SERVING');
    assert.equal(await perService.next(), 'NOT_SERVING');

    // While loading, an unknown model is UNAVAILABLE (retryable), not NOT_FOUND; once loaded, NOT_FOUND.
    const loaded = server.loadModels();
    assert.throws(() => server.repository.resolve('mlp', undefined), (e: { code: string; message: string }) =>
      e.code === 'UNAVAILABLE' && /not loaded yet: the model repository is still loading; retry when health reports SERVING/.test(e.message));
    await loaded;
    assert.throws(() => server.repository.resolve('nope', undefined), (e: { code: string }) => e.code === 'NOT_FOUND');
    assert.equal(await overall.next(), 'SERVING');
    assert.equal(await perService.next(), 'SERVING');
    assert.equal(await check(client, ''), 'SERVING');
    assert.equal(await check(client, 'tensorgate.v1.ModelService'), 'SERVING');
    await expectStatus(check(client, 'no.such.Service'), grpc.status.NOT_FOUND);

    const drained = server.shutdown(2000);
    assert.equal(await overall.next(), 'NOT_SERVING');
    assert.equal(await perService.next(), 'NOT_SERVING');
    overall.cancel();
    perService.cancel();
    await drained;
  } finally {
    client.close();
    await server.shutdown(0);
  }
});

test('health: Watch on a service that is not registered reports SERVICE_UNKNOWN and stays open', async () => {
  const server = newServer();
  const port = await server.start();
  const client = healthClient(`127.0.0.1:${port}`);
  try {
    const w = watch(client, 'no.such.Service');
    assert.equal(await w.next(), 'SERVICE_UNKNOWN');
    w.cancel();
  } finally {
    client.close();
    await server.shutdown(0);
  }
});

