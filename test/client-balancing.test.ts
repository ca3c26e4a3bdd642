/**
 * Connections and balancing without a proxy: --max-connection-age-ms makes the server close old connections
 * (GOAWAY) and the client reconnects without a failed call; the client's multi-address target spreads calls
 * over two servers round-robin and keeps succeeding through one when the other drains and stops.
 * Everything waits for events (connections seen, calls answered); no sleeps, no timing assertions.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { clientTarget } from '../src/client/channel-options';
import { createModelClient, type ModelServiceClient } from '../src/client/model-client';
import { resolveServerConfig } from '../src/config/server-config';
import { cli } from './cli-process';
import { copyBundledModel, f32Tensor, startTestServer, tempDir, unary, type TestServer } from './common';

let repo: ReturnType<typeof tempDir>;
before(() => {
  repo = tempDir('balancing');
  copyBundledModel(repo.dir, 'mlp');
});
after(() => repo.cleanup());

const predict = (client: ModelServiceClient, seed: number) =>
  unary(client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], Float32Array.from({ length: 64 }, (_, i) => (seed * 64 + i) % 97))] }, { deadlineMs: 20_000 });

/**
 * A TCP relay in front of a port that records each connection and which side closed it first, so a test
 * can count the client's connections and see the server end them (a GOAWAY, then the close).
 */
async function connectionCounter(targetPort: number) {
  const events = new EventEmitter();
  const connections: { closedBy?: 'server' | 'client' }[] = [];
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const record: { closedBy?: 'server' | 'client' } = {};
    connections.push(record);
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) sockets.add(s);
    const closed = (by: 'server' | 'client') => () => {
      if (record.closedBy) return;
      record.closedBy = by;
      events.emit('closed', record);
    };
    upstream.on('end', closed('server')).on('error', closed('server'));
    client.on('end', closed('client')).on('error', closed('client'));
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  return {
    port: (relay.address() as net.AddressInfo).port,
    connections,
    /** Resolves once the server side has closed `n` connections. */
    serverClosed(n: number): Promise<void> {
      const count = () => connections.filter((c) => c.closedBy === 'server').length;
      if (count() >= n) return Promise.resolve();
      return new Promise((resolve) => {
        const check = () => {
          if (count() >= n) {
            events.off('closed', check);
            resolve();
          }
        };
        events.on('closed', check);
      });
    },
    close() {
      for (const s of sockets) s.destroy();
      relay.close();
    },
  };
}

/** Calls in `concurrency` loops until stop() and counts what was answered and what failed. */
function load(client: ModelServiceClient, concurrency: number) {
  let stopped = false;
  const stats = { ok: 0, failed: 0, errors: [] as string[] };
  const answered = new EventEmitter();
  const loops = Array.from({ length: concurrency }, async (_, loop) => {
    for (let i = 0; !stopped; i++) {
      try {
        await predict(client, loop * 1_000_000 + i);
        stats.ok++;
        answered.emit('ok');
      } catch (err) {
        stats.failed++;
        if (stats.errors.length < 10) stats.errors.push(`${grpc.status[(err as grpc.ServiceError).code]}: ${(err as grpc.ServiceError).details}`);
      }
    }
  });
  return {
    stats,
    /** Resolves once `n` more calls were answered. */
    answered(n: number): Promise<void> {
      const target = stats.ok + n;
      return new Promise((resolve) => {
        const check = () => {
          if (stats.ok >= target) {
            answered.off('ok', check);
            resolve();
          }
        };
        answered.on('ok', check);
      });
    },
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Predict calls answered OK by one server, from its own /metrics. */
async function predictCount(ts: TestServer): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${ts.server.httpPort}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(/^tensorgate_requests_total\{([^}]*)\} (\S+)$/gm)) {
    if (/method="Predict"/.test(m[1]!) && /code="OK"/.test(m[1]!)) sum += Number(m[2]);
  }
  return sum;
}

test('connection settings: flags and variables are validated, and one bad value gives one clear line', () => {
  const config = resolveServerConfig(
    { 'max-connection-age-ms': '300', 'keepalive-time-ms': '10000' },
    { TENSORGATE_MAX_CONNECTION_AGE_GRACE_MS: '5000', TENSORGATE_KEEPALIVE_TIMEOUT_MS: '2000' },
  );
  assert.deepEqual(
    [config.maxConnectionAgeMs, config.maxConnectionAgeGraceMs, config.keepaliveTimeMs, config.keepaliveTimeoutMs],
    [300, 5000, 10000, 2000],
  );
  const defaults = resolveServerConfig({}, {});
  assert.deepEqual([defaults.maxConnectionAgeMs, defaults.maxConnectionAgeGraceMs, defaults.keepaliveTimeMs, defaults.keepaliveTimeoutMs], [0, 0, 0, 0]);
  assert.throws(
    () => resolveServerConfig({ 'max-connection-age-ms': '5m' }, {}),
    (err: Error) => /^invalid setting: --max-connection-age-ms "5m": .*\(--max-connection-age-ms: gRPC: close connections/.test(err.message) && !err.message.includes('\n'),
  );
  assert.throws(() => resolveServerConfig({}, { TENSORGATE_KEEPALIVE_TIME_MS: '-1' }), /invalid setting: TENSORGATE_KEEPALIVE_TIME_MS "-1": Too small/);
});

test('client addresses: one stays as given; a list becomes one ipv4:/ipv6: target; a bad list is refused with the reason', () => {
  assert.equal(clientTarget('127.0.0.1:50051'), '127.0.0.1:50051');
  assert.equal(clientTarget('tensorgate.svc:50051'), 'tensorgate.svc:50051');
  assert.equal(clientTarget('127.0.0.1:1, 10.0.0.2:2'), 'ipv4:127.0.0.1:1,10.0.0.2:2');
  assert.equal(clientTarget('localhost:1,127.0.0.1:2'), 'ipv4:127.0.0.1:1,127.0.0.1:2');
  assert.equal(clientTarget('[::1]:1,[fd00::2]:2'), 'ipv6:[::1]:1,[fd00::2]:2');
  assert.throws(() => clientTarget('a.example:1,b.example:2'), /"a.example:1" is not an IP address; .*one DNS name/);
  assert.throws(() => clientTarget('127.0.0.1:1,[::1]:2'), /"\[::1\]:2" is of another IP family/);
  assert.throws(() => clientTarget('127.0.0.1:1,127.0.0.1'), /"127.0.0.1" is not HOST:PORT/);
  assert.throws(() => clientTarget('127.0.0.1:1,'), /"" is empty/);
});

test('--max-connection-age-ms: the server closes connections older than the age (GOAWAY) and the client reconnects without a failed call', async () => {
  const ts = await startTestServer({ modelRepository: repo.dir, maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 10_000, cacheMaxBytes: 0 });
  const relay = await connectionCounter(ts.port);
  const client = createModelClient(`127.0.0.1:${relay.port}`, {}, { retries: true });
  const running = load(client, 4);
  try {
    // Three connections ended by the server, each replaced by a new one, while calls keep going.
    await relay.serverClosed(3);
    await running.answered(20); // and calls are answered on the newest connection too
    await running.stop();
    const connections = relay.connections.length;
    console.log(`max connection age 300 ms: ${running.stats.ok} calls answered, ${running.stats.failed} failed, over ${connections} connections`);
    assert.equal(running.stats.failed, 0, `failed calls: ${running.stats.errors.join('; ')}`);
    assert.ok(connections >= 4, `the client reconnected after each GOAWAY (${connections} connections)`);
  } finally {
    await running.stop();
    client.close();
    relay.close();
    await ts.close();
  }
});

test('several addresses: calls spread round-robin over both servers, and keep succeeding through one while the other drains and stops', async () => {
  const a = await startTestServer({ modelRepository: repo.dir, cacheMaxBytes: 0 });
  const b = await startTestServer({ modelRepository: repo.dir, cacheMaxBytes: 0 });
  const client = createModelClient(`127.0.0.1:${a.port},127.0.0.1:${b.port}`, {}, { retries: true });
  let running: ReturnType<typeof load> | undefined;
  try {
    // Both connected: round_robin picks only ready connections, so wait until each server has answered once.
    for (let i = 0; (await predictCount(a)) === 0 || (await predictCount(b)) === 0; i++) await predict(client, i);
    const [a0, b0] = [await predictCount(a), await predictCount(b)];
    const calls = 200;
    for (let i = 0; i < calls; i++) await predict(client, 1000 + i);
    const [a1, b1] = [(await predictCount(a)) - a0, (await predictCount(b)) - b0];
    console.log(`both up: ${calls} calls -> server A ${a1}, server B ${b1}`);
    assert.equal(a1 + b1, calls);
    assert.ok(a1 >= calls / 4 && b1 >= calls / 4, `round robin spreads calls (A ${a1}, B ${b1})`);

    // Under load, A drains and stops; calls go on through B.
    running = load(client, 4);
    await running.answered(100);
    await a.close();
    const bAtStop = await predictCount(b);
    await running.answered(200);
    await running.stop();
    const bAfter = (await predictCount(b)) - bAtStop;
    console.log(`A stopped under load: ${running.stats.ok} calls answered, ${running.stats.failed} failed; B answered ${bAfter} after A stopped`);
    assert.equal(running.stats.failed, 0, `failed calls: ${running.stats.errors.join('; ')}`);
    assert.ok(bAfter >= 200, 'B answered every call after A stopped');
  } finally {
    await running?.stop();
    client.close();
    await a.close();
    await b.close();
  }
});

test('the CLI takes several addresses: one gone, the call goes to the other; a bad list is one clear line', async () => {
  const ts = await startTestServer({ modelRepository: repo.dir });
  const gone = await (async () => {
    const s = net.createServer().listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as net.AddressInfo).port;
    s.close();
    await once(s, 'close');
    return port;
  })();
  try {
    const list = `127.0.0.1:${gone},127.0.0.1:${ts.port}`;
    const models = await cli(['models', '--address', list]);
    assert.equal(models.code, 0, models.stderr);
    assert.match(models.stdout, /^mlp +v1 READY/m);
    const predict = await cli(['predict', '--address', list, '--model', 'mlp', '--input', JSON.stringify({ name: 'input', dtype: 'FP32', shape: [1, 64], values: Array(64).fill(0) })]);
    assert.equal(predict.code, 0, predict.stderr);
    const bad = await cli(['models', '--address', `db.internal:1,127.0.0.1:${ts.port}`]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /"db.internal:1" is not an IP address/);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  } finally {
    await ts.close();
  }
});
