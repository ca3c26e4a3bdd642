/**
 * The HTTP front door against hostile and careless clients, over real sockets: slowloris headers and bodies
 * are cut off by the timeouts, idle keep-alive connections close, the connection cap holds, bodies are
 * refused before they are read (routes that take none, anything over a route's limit, unsupported content
 * types), error messages name the path as sent, bounded in size, and a mounted fastify plugin answers its
 * own errors and 404s while the body rules still hold for it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { TensorgateServer } from '../src/server';
import { tempDir, withTestServer } from './common';

/** Small timeouts so the slow-client tests finish in well under a second each. */
const FAST = { httpHeadersTimeoutMs: 300, httpRequestTimeoutMs: 600, httpKeepAliveTimeoutMs: 1000 };
const LIMIT = 1024;
// A failing (pre-fix) run must end with an assertion, not hang the suite.
const T = { timeout: 10_000 };

interface Exchange {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Everything the server sent before closing. */
  raw: string;
}

function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  // A reset after the server refuses an unread body is expected; 'close' still follows.
  socket.on('error', () => undefined);
  return once(socket, 'connect').then(() => socket);
}

/** Resolves when the server closes the connection; reads (and drops) what it sends, else 'close' never comes. */
function closing(socket: net.Socket): Promise<unknown> {
  socket.resume();
  return once(socket, 'close');
}

/** Collects what the server sends until it closes the connection. */
function readUntilClose(socket: net.Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
}

function parseResponse(raw: string): Exchange {
  const end = raw.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no complete response in ${JSON.stringify(raw.slice(0, 200))}`);
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: raw.slice(end + 4), raw };
}

/** Writes `head` (and `body`) on a fresh connection; resolves with the response once the server closes. */
async function sendRaw(port: number, head: string, body = ''): Promise<Exchange> {
  const socket = await connect(port);
  const closed = readUntilClose(socket);
  socket.write(head + body);
  return parseResponse(await closed);
}

/** A keep-alive request through node:http, for answers that must not close the connection. */
function request(port: number, method: string, path: string, headers: http.OutgoingHttpHeaders = {}, body?: string) {
  // Its own keep-alive agent, so the request asks to keep the connection and nothing is left open after.
  const agent = new http.Agent({ keepAlive: true });
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.once('error', reject);
    req.end(body);
  }).finally(() => agent.destroy());
}

function errorOf(body: string): string {
  return (JSON.parse(body) as { error: string }).error;
}

describe('HTTP front door', () => {
  let server: TensorgateServer;
  let port: number;
  const repo = tempDir('http-front-door');

  before(async () => {
    const config = serverConfigSchema.parse({ port: 0, httpPort: 0, workers: 1, logLevel: 'silent', modelRepository: repo.dir, ...FAST });
    server = new TensorgateServer(config, createLogger('silent'));
    // Routes that take a body, mounted the way the HTTP APIs are (before listening): the front door enforces their limit.
    server.http.mount((app) => {
      app.post('/test/echo', { bodyLimit: LIMIT }, async (request) => ({ bytes: (request.body as Buffer).length }));
      app.post('/test/json', { bodyLimit: LIMIT }, async (request) => ({ got: request.body }));
    });
    // A plugin with its own error and not-found handlers for its prefix, as the OpenAI-compatible API has.
    server.http.mount(
      (app) => {
        app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => void reply.code(err.statusCode ?? 500).send({ plugin: { message: err.message } }));
        app.setNotFoundHandler((_request, reply) => void reply.code(404).send({ plugin: { message: 'not here' } }));
        app.post('/echo', { bodyLimit: LIMIT }, async (request) => ({ got: request.body }));
      },
      { prefix: '/plugin' },
    );
    await server.start();
    port = server.httpPort;
  });

  after(async () => {
    await server.shutdown(1000);
    repo.cleanup();
  });

  test('a slowloris client that never finishes its headers is answered 408 and disconnected', T, async () => {
    const socket = await connect(port);
    const closed = readUntilClose(socket);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a');
    assert.match(await closed, /^HTTP\/1\.1 408/);
  });

  test('a connection that sends nothing at all is closed', T, async () => {
    await closing(await connect(port));
  });

  test('a body that trickles in slower than the request timeout is cut off', T, async () => {
    const socket = await connect(port);
    const closed = readUntilClose(socket);
    socket.write(`POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab`);
    assert.match(await closed, /^HTTP\/1\.1 408/);
  });

  test('an idle keep-alive connection is closed after the configured keep-alive timeout', T, async () => {
    const socket = await connect(port);
    let answered = '';
    socket.on('data', (c: Buffer) => (answered += c.toString('latin1')));
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(socket, 'close');
    assert.match(answered, /^HTTP\/1\.1 200/);
    assert.match(answered, /\r\nKeep-Alive: timeout=1\r\n/i);
  });

  test('many slowloris connections are all closed and the port still answers', T, async () => {
    const sockets = await Promise.all(Array.from({ length: 200 }, () => connect(port)));
    const closed = sockets.map(closing);
    for (const s of sockets) s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await Promise.all(closed);
    assert.equal((await request(port, 'GET', '/healthz')).status, 200);
  });

  test('a 100 MB POST to /healthz is answered 405 and the connection closed before the body is sent', T, async () => {
    const res = await sendRaw(port, 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n', 'abc');
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'GET, HEAD');
    assert.equal(res.headers.connection, 'close');
    assert.match(errorOf(res.body), /method POST is not allowed on \/healthz/);
  });

  test('a GET with a body on a route that takes none is refused 413 without reading the body', T, async () => {
    const res = await sendRaw(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n', 'abc');
    assert.equal(res.status, 413);
    assert.equal(res.headers.connection, 'close');
    assert.match(errorOf(res.body), /\/healthz takes no request body/);
  });

  test('a chunked body on a route that takes none is refused 413 without reading it', T, async () => {
    const res = await sendRaw(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nhello\r\n');
    assert.equal(res.status, 413);
    assert.equal(res.headers.connection, 'close');
  });

  test('Expect: 100-continue with a body a route takes none of is refused without 100 Continue', T, async () => {
    const res = await sendRaw(port, 'POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n');
    assert.equal(res.status, 405);
    assert.doesNotMatch(res.raw, /100 Continue/);
  });

  test('a body route accepts a body within its limit, chunked or not, and keeps the connection', T, async () => {
    const plain = await request(port, 'POST', '/test/echo', { 'content-type': 'application/octet-stream' }, 'x'.repeat(LIMIT));
    assert.equal(plain.status, 200);
    assert.deepEqual(JSON.parse(plain.body), { bytes: LIMIT });
    assert.notEqual(plain.headers.connection, 'close');
    const chunked = await sendRaw(port, 'POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n', '3\r\nabc\r\n0\r\n\r\n');
    assert.equal(chunked.status, 200);
    assert.deepEqual(JSON.parse(chunked.body), { bytes: 3 });
  });

  test('a Content-Length over the route limit is refused 413 up front', T, async () => {
    const res = await sendRaw(port, `POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`);
    assert.equal(res.status, 413);
    assert.equal(res.headers.connection, 'close');
    assert.match(errorOf(res.body), new RegExp(`limit of ${LIMIT} bytes`));
  });

  test('a chunked body over the route limit is cut off at the limit with 413', T, async () => {
    const socket = await connect(port);
    const closed = readUntilClose(socket);
    socket.write('POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = 'y'.repeat(600);
    // Only just over the limit, and the last chunk never comes: the answer cannot wait for the end.
    socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    const res = parseResponse(await closed);
    assert.equal(res.status, 413);
    assert.equal(res.headers.connection, 'close');
    assert.match(errorOf(res.body), new RegExp(`limit of ${LIMIT} bytes`));
  });

  test('GET //etc/passwd names the path as sent', T, async () => {
    const res = await request(port, 'GET', '//etc/passwd');
    assert.equal(res.status, 404);
    assert.match(errorOf(res.body), /no route for \/\/etc\/passwd;/);
  });

  test('a long path is echoed only as a short prefix with its length', T, async () => {
    const path = `/${'a'.repeat(8000)}`;
    const res = await request(port, 'GET', `${path}?q=1`);
    assert.equal(res.status, 404);
    assert.ok(res.body.length < 512, `error body of ${res.body.length} bytes`);
    assert.match(errorOf(res.body), /\.\.\.\(8001 characters\)/);
  });

  test('404 and 405 (with Allow) still answer on a reusable connection; GET and HEAD still work', T, async () => {
    const missing = await request(port, 'GET', '/nope');
    assert.equal(missing.status, 404);
    assert.match(errorOf(missing.body), /no route for \/nope; this port serves \/metrics, \/healthz, \/readyz/);
    assert.notEqual(missing.headers.connection, 'close');
    const wrong = await request(port, 'DELETE', '/metrics');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.allow, 'GET, HEAD');
    assert.notEqual(wrong.headers.connection, 'close');
    assert.equal((await request(port, 'GET', '/healthz?verbose=1')).body, 'ok\n');
    assert.equal((await request(port, 'HEAD', '/readyz')).status, 200);
  });

  test('invalid JSON is a 400 that names the fault; an unsupported content type is a 415, refused unread', T, async () => {
    const json = { 'content-type': 'application/json' };
    const good = await request(port, 'POST', '/test/json', json, '{"a":[1,2]}');
    assert.equal(good.status, 200);
    assert.deepEqual(JSON.parse(good.body), { got: { a: [1, 2] } });
    const bad = await request(port, 'POST', '/test/json', json, `{"a": ${'9'.repeat(900)}`);
    assert.equal(bad.status, 400);
    assert.match(errorOf(bad.body), /^the request body is not valid JSON: /);
    assert.ok(bad.body.length < 512, `error body of ${bad.body.length} bytes`);
    assert.notEqual(bad.headers.connection, 'close', 'the body was read whole');
    const poisoned = await request(port, 'POST', '/test/json', json, '{"__proto__": {"admin": true}}');
    assert.equal(poisoned.status, 400);
    assert.match(errorOf(poisoned.body), /"__proto__" is not allowed/);
    const empty = await request(port, 'POST', '/test/json', { ...json, 'content-length': 0 }, '');
    assert.equal(empty.status, 400);
    assert.match(errorOf(empty.body), /body is empty/);
    const xml = await sendRaw(port, 'POST /test/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: 1000\r\n\r\n', '<a/>');
    assert.equal(xml.status, 415);
    assert.equal(xml.headers.connection, 'close');
    assert.match(errorOf(xml.body), /content type "application\/xml" is not supported by \/test\/json/);
  });

  test('Expect: 100-continue on a route that takes the body gets 100 Continue, then the answer', T, async () => {
    const socket = await connect(port);
    const continued = once(socket, 'data');
    const closed = readUntilClose(socket);
    socket.write('POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    assert.match(String(await continued), /^HTTP\/1\.1 100 Continue\r\n\r\n/);
    socket.write('hello');
    const raw = await closed;
    const res = parseResponse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { bytes: 5 });
  });

  test('a mounted plugin answers its own errors and 404s; its unknown routes and over-limit bodies stay unread', T, async () => {
    const json = { 'content-type': 'application/json' };
    assert.deepEqual(JSON.parse((await request(port, 'POST', '/plugin/echo', json, '{"x":1}')).body), { got: { x: 1 } });
    const bad = await request(port, 'POST', '/plugin/echo', json, '{');
    assert.equal(bad.status, 400);
    assert.match((JSON.parse(bad.body) as { plugin: { message: string } }).plugin.message, /not valid JSON/);
    const missing = await sendRaw(port, 'POST /plugin/nope HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n', '{');
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), { plugin: { message: 'not here' } });
    assert.equal(missing.headers.connection, 'close');
    const big = await sendRaw(port, `POST /plugin/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`);
    assert.equal(big.status, 413);
    assert.equal(big.headers.connection, 'close');
    assert.match((JSON.parse(big.body) as { plugin: { message: string } }).plugin.message, new RegExp(`limit of ${LIMIT} bytes for /plugin/echo`));
  });

  test('the request target is parsed as before: absolute-form and dot segments route, anything else is a 400', T, async () => {
    const absolute = await sendRaw(port, 'GET http://example.com/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(absolute.body, 'ok\n');
    const dots = await sendRaw(port, 'GET /a/../healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(dots.body, 'ok\n');
    const star = await sendRaw(port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(star.status, 400);
    assert.match(errorOf(star.body), /malformed request target \*/);
    const encoding = await request(port, 'GET', '/%zz');
    assert.equal(encoding.status, 400);
    assert.match(errorOf(encoding.body), /malformed request target \/%zz/);
  });
});

test('the connection cap refuses connections past it while the others are open', T, async () => {
  const repo = tempDir('http-cap');
  try {
    await withTestServer({ modelRepository: repo.dir, httpMaxConnections: 3 }, async (ts) => {
      const server = ts.server.http.server;
      let accepted = 0;
      const allAccepted = new Promise<void>((resolve) => server.on('connection', () => ++accepted === 3 && resolve()));
      const held = await Promise.all([0, 1, 2].map(() => connect(ts.server.httpPort)));
      await allAccepted;
      const extra = await connect(ts.server.httpPort);
      await closing(extra);
      assert.ok(held.every((s) => !s.destroyed), 'connections under the cap stay open');
      for (const s of held) s.destroy();
    });
  } finally {
    repo.cleanup();
  }
});
