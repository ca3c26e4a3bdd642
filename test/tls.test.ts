/**
 * TLS and mutual TLS on both ports (issue 14), with certificates made by openssl in the test: handshakes with
 * real grpc-js, node:https and node:tls clients and the real CLI; rotation of the files while a client stays
 * connected; a bad rotation refused; startup errors from the real `tensorgate serve`; the plaintext warning.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, test } from 'node:test';
import { createModelClient, unary, type ModelServiceClient } from '../src/client/model-client';
import type { ClientSecurity } from '../src/client/client-security';
import { serverConfigSchema, type ServerConfig } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { httpPeerIdentity } from '../src/security/peer-identity';
import { TensorgateServer } from '../src/server';
import { cli } from './cli-process';
import { copyBundledModel, expectStatus, f32Tensor, tempDir } from './common';
import { makeCa, makeDatedLeaf, makeLeaf, type CertFiles } from './tls-certs';

const TEST_TIMEOUT = { timeout: 120_000 };
let tmp: { dir: string; cleanup: () => void };
let repo: string;
let ca: CertFiles, otherCa: CertFiles, server1: CertFiles, server2: CertFiles, client: CertFiles, clientB: CertFiles, strangerClient: CertFiles, expired: CertFiles;
const pem = (file: string) => fs.readFileSync(file);
const serialOf = (file: string) => new X509Certificate(pem(file)).serialNumber;

before(async () => {
  tmp = tempDir('tls');
  repo = path.join(tmp.dir, 'models');
  fs.mkdirSync(repo);
  copyBundledModel(repo, 'mlp');
  const d = tmp.dir;
  [ca, otherCa] = await Promise.all([makeCa(d, 'ca', 'tensorgate-test-ca'), makeCa(d, 'other-ca', 'unrelated-ca')]);
  const server = { san: 'DNS:localhost,IP:127.0.0.1', usage: 'serverAuth' as const };
  [server1, server2, client, clientB, strangerClient, expired] = await Promise.all([
    makeLeaf(d, 'server1', ca, { cn: 'localhost', ...server }),
    makeLeaf(d, 'server2', ca, { cn: 'localhost-rotated', ...server }),
    makeLeaf(d, 'client', ca, { cn: 'client-a', san: 'URI:spiffe://example.org/client-a,DNS:client-a.test', usage: 'clientAuth' }),
    makeLeaf(d, 'client-b', ca, { cn: 'client-b', san: 'URI:spiffe://example.org/client-b', usage: 'clientAuth' }),
    makeLeaf(d, 'stranger', otherCa, { cn: 'client-a', san: 'DNS:client-a.test', usage: 'clientAuth' }),
    makeDatedLeaf(d, 'expired', ca, { cn: 'localhost', san: 'DNS:localhost', start: '20200101000000Z', end: '20200102000000Z' }),
  ]);
});
after(() => tmp.cleanup());

/** The server's log lines as objects, and waits for one (already written or to come). */
class LogCapture extends EventEmitter {
  readonly lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  readonly logger = createLogger('info', { write: (s: string) => this.add(JSON.parse(s)) });
  private add(line: LogCapture['lines'][number]): void {
    this.lines.push(line);
    this.emit('line', line);
  }
  waitFor(match: (l: LogCapture['lines'][number]) => boolean): Promise<LogCapture['lines'][number]> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const on = (l: LogCapture['lines'][number]) => match(l) && (this.off('line', on), resolve(l));
      this.on('line', on);
    });
  }
}

interface Running {
  server: TensorgateServer;
  log: LogCapture;
  port: number;
  httpPort: number;
  close(): Promise<void>;
}

async function startServer(settings: Partial<ServerConfig>, beforeStart?: (s: TensorgateServer) => void): Promise<Running> {
  const config = serverConfigSchema.parse({
    port: 0, httpPort: 0, workers: 1, modelRepository: repo, accessLog: 'false', shutdownGraceMs: 1000,
    // Keep-alive sockets must outlive a rotation on a slow machine: the HTTPS rotation check reuses one.
    httpKeepAliveTimeoutMs: 120_000, tlsReloadSecs: 0.2, ...settings,
  });
  const log = new LogCapture();
  const server = new TensorgateServer(config, log.logger);
  beforeStart?.(server);
  try {
    await server.start();
  } catch (err) {
    await server.shutdown(0);
    throw err;
  }
  return { server, log, port: server.port, httpPort: server.httpPort, close: () => server.shutdown(500) };
}

const predict = (c: ModelServiceClient) => unary(c, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], new Float32Array(64))] }, { deadlineMs: 20_000 });

/** A client on its own connection (grpc-js otherwise shares one between clients of the same target). */
function grpcClient(port: number, security: ClientSecurity, host = 'localhost'): ModelServiceClient {
  return createModelClient(`${host}:${port}`, { 'grpc.use_local_subchannel_pool': 1 }, { security });
}

async function withClient<T>(c: ModelServiceClient, body: (c: ModelServiceClient) => Promise<T>): Promise<T> {
  try {
    return await body(c);
  } finally {
    c.close();
  }
}

/** GET over https: status and body, or the error the handshake or request ended with. */
function httpsGet(port: number, urlPath: string, opts: https.RequestOptions): Promise<{ status: number; body: string; req: import('node:http').ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', servername: 'localhost', port, path: urlPath, ...opts }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode!, body, req }));
    });
    req.on('error', reject);
  });
}

/** The certificate a fresh TLS connection is served (the rotation checks read its serial). */
async function servedCertificate(port: number, alpn: string[]): Promise<tls.PeerCertificate> {
  const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca: pem(ca.cert), ALPNProtocols: alpn });
  try {
    await once(socket, 'secureConnect');
    return socket.getPeerCertificate();
  } finally {
    socket.destroy();
  }
}

test('TLS: gRPC Predict with the CA trusted, HTTPS /healthz; plaintext and an untrusted CA refused', TEST_TIMEOUT, async () => {
  const s = await startServer({ tlsCert: server1.cert, tlsKey: server1.key });
  try {
    await withClient(grpcClient(s.port, { tls: { ca: pem(ca.cert) } }), async (c) => assert.equal((await predict(c)).model, 'mlp'));
    // The certificate names 127.0.0.1 as well (SAN IP), so the address may be the IP.
    await withClient(grpcClient(s.port, { tls: { ca: pem(ca.cert) } }, '127.0.0.1'), async (c) => assert.equal((await predict(c)).model, 'mlp'));
    await withClient(grpcClient(s.port, {}), (c) => expectStatus(predict(c), grpc.status.UNAVAILABLE));
    await withClient(grpcClient(s.port, { tls: { ca: pem(otherCa.cert) } }), (c) => expectStatus(predict(c), grpc.status.UNAVAILABLE));
    const health = await httpsGet(s.httpPort, '/healthz', { ca: pem(ca.cert) });
    assert.equal(health.status, 200);
    await assert.rejects(httpsGet(s.httpPort, '/healthz', { ca: pem(otherCa.cert) }), /self[- ]signed|unable to verify|certificate/i);
    assert.ok(s.log.lines.some((l) => /^TLS on both ports: certificate CN=localhost/.test(l.msg)));
    assert.ok(!s.log.lines.some((l) => /plaintext/.test(l.msg)), 'no plaintext warning with TLS on');
    // The CLI client, trusting the CA.
    const listed = await cli(['models', '--address', `localhost:${s.port}`, '--tls-ca', ca.cert, '--timeout-ms', '20000']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^mlp\s+v1 READY$/m);
  } finally {
    await s.close();
  }
});

test('mutual TLS: the right client certificate is served on both ports; none, or one from another CA, is refused', TEST_TIMEOUT, async () => {
  const s = await startServer({ tlsCert: server1.cert, tlsKey: server1.key, tlsClientCa: ca.cert }, (server) =>
    server.http.addRoute('GET', '/test/peer', (req, res) => {
      res.end(JSON.stringify(httpPeerIdentity(req) ?? null));
    }),
  );
  try {
    const trust = { ca: pem(ca.cert) };
    const mine = { ...trust, cert: pem(client.cert), key: pem(client.key) };
    await withClient(grpcClient(s.port, { tls: mine }), async (c) => assert.equal((await predict(c)).model, 'mlp'));
    await withClient(grpcClient(s.port, { tls: trust }), (c) => expectStatus(predict(c), grpc.status.UNAVAILABLE));
    await withClient(grpcClient(s.port, { tls: { ...trust, cert: pem(strangerClient.cert), key: pem(strangerClient.key) } }), (c) =>
      expectStatus(predict(c), grpc.status.UNAVAILABLE),
    );

    const peer = await httpsGet(s.httpPort, '/test/peer', mine);
    assert.equal(peer.status, 200);
    assert.deepEqual(JSON.parse(peer.body), {
      subject: 'client-a',
      sans: ['URI:spiffe://example.org/client-a', 'DNS:client-a.test'],
      fingerprint256: new X509Certificate(pem(client.cert)).fingerprint256,
    });
    // TLS 1.3 finishes the client's side of the handshake before the server's verdict arrives, so a refusal
    // surfaces as the alert or as the connection closing under the request.
    const refused = /certificate required|unknown ca|alert|ECONNRESET|socket hang up/i;
    await assert.rejects(httpsGet(s.httpPort, '/healthz', trust), refused);
    await assert.rejects(httpsGet(s.httpPort, '/healthz', { ...trust, cert: pem(strangerClient.cert), key: pem(strangerClient.key) }), refused);

    const address = `localhost:${s.port}`;
    const withCert = await cli(['models', '--address', address, '--tls-ca', ca.cert, '--tls-cert', client.cert, '--tls-key', client.key, '--timeout-ms', '20000']);
    assert.equal(withCert.code, 0, withCert.stderr);
    assert.match(withCert.stdout, /^mlp\s+v1 READY$/m);
    const without = await cli(['models', '--address', address, '--tls-ca', ca.cert, '--timeout-ms', '5000']);
    assert.notEqual(without.code, 0);
    assert.match(without.stderr, /certificate required|No connection established|Failed to connect/);
    const unpaired = await cli(['models', '--address', address, '--tls-cert', client.cert]);
    assert.equal(unpaired.code, 1);
    assert.equal(unpaired.stderr, `tensorgate: --tls-cert ${client.cert} needs --tls-key FILE: the client certificate's private key (PEM)\n`);
  } finally {
    await s.close();
  }
});

/**
 * A Kubernetes-style secret volume: tls.crt and tls.key are links through `..data`, a link to the current
 * generation's folder, swapped atomically by a rename.
 */
function secretVolume(root: string, files: CertFiles): { cert: string; key: string; swap(next: CertFiles): void } {
  let generation = 0;
  const publish = (f: CertFiles) => {
    const folder = path.join(root, `..gen${++generation}`);
    fs.mkdirSync(folder);
    fs.copyFileSync(f.cert, path.join(folder, 'tls.crt'));
    fs.copyFileSync(f.key, path.join(folder, 'tls.key'));
    fs.symlinkSync(path.basename(folder), path.join(root, '..data_tmp'));
    fs.renameSync(path.join(root, '..data_tmp'), path.join(root, '..data'));
  };
  fs.mkdirSync(root);
  publish(files);
  fs.symlinkSync('..data/tls.crt', path.join(root, 'tls.crt'));
  fs.symlinkSync('..data/tls.key', path.join(root, 'tls.key'));
  return { cert: path.join(root, 'tls.crt'), key: path.join(root, 'tls.key'), swap: publish };
}

test('rotation: new handshakes get the new certificate on both ports; open gRPC and HTTPS connections keep working', TEST_TIMEOUT, async () => {
  const volume = secretVolume(path.join(tmp.dir, 'secret-rotation'), server1);
  const s = await startServer({ tlsCert: volume.cert, tlsKey: volume.key });
  const c = grpcClient(s.port, { tls: { ca: pem(ca.cert) } });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pem(ca.cert) });
  try {
    await predict(c);
    const channel = c.getChannel();
    assert.equal(channel.getConnectivityState(false), grpc.connectivityState.READY);
    let left: grpc.connectivityState | undefined;
    channel.watchConnectivityState(grpc.connectivityState.READY, Date.now() + 600_000, () => (left ??= channel.getConnectivityState(false)));
    const first = await httpsGet(s.httpPort, '/healthz', { agent });
    const openSocket = first.req.socket as tls.TLSSocket;
    assert.equal(openSocket.getPeerCertificate().serialNumber, serialOf(server1.cert));

    const reloaded = once(s.server.tls!, 'reloaded');
    volume.swap(server2);
    await reloaded;
    const line = await s.log.waitFor((l) => l.msg.startsWith('TLS certificate reloaded'));
    assert.equal(line.subject, 'CN=localhost-rotated');
    assert.equal(line.serial, serialOf(server2.cert));

    // The open connections: the same gRPC channel, never left READY, and the same HTTPS socket.
    assert.equal((await predict(c)).model, 'mlp');
    assert.equal(left, undefined, `the gRPC channel left READY (to ${left !== undefined ? grpc.connectivityState[left] : ''}) during the rotation`);
    const second = await httpsGet(s.httpPort, '/healthz', { agent });
    assert.equal(second.status, 200);
    assert.equal(second.req.reusedSocket, true, 'the keep-alive socket was reused');
    assert.equal(second.req.socket, openSocket);
    assert.equal(openSocket.getPeerCertificate().serialNumber, serialOf(server1.cert), 'the open socket keeps the certificate it negotiated');

    // New connections: the new certificate, on both ports, and calls work over them.
    assert.equal((await servedCertificate(s.port, ['h2'])).serialNumber, serialOf(server2.cert));
    assert.equal((await servedCertificate(s.httpPort, ['http/1.1'])).serialNumber, serialOf(server2.cert));
    await withClient(grpcClient(s.port, { tls: { ca: pem(ca.cert) } }), async (fresh) => assert.equal((await predict(fresh)).model, 'mlp'));
    assert.ok(!s.log.lines.some((l) => l.level >= 40 && /TLS/.test(l.msg)), 'no warning: a swap read half-done is retried, not reported');
  } finally {
    agent.destroy();
    c.close();
    await s.close();
  }
});

test('a bad rotation (the key of another certificate, then a missing file) is logged and the previous certificate keeps serving', TEST_TIMEOUT, async () => {
  const dir = path.join(tmp.dir, 'bad-rotation');
  fs.mkdirSync(dir);
  const files = { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key') };
  fs.copyFileSync(server1.cert, files.cert);
  fs.copyFileSync(server1.key, files.key);
  const s = await startServer({ tlsCert: files.cert, tlsKey: files.key });
  try {
    const refused = once(s.server.tls!, 'reload-failed');
    fs.copyFileSync(server2.cert, files.cert); // the new certificate, the old key
    const [reason] = (await refused) as [string];
    assert.equal(reason, `--tls-key ${files.key} does not match the certificate in --tls-cert ${files.cert} (CN=localhost-rotated): expected that certificate's private key`);
    const warning = await s.log.waitFor((l) => l.level === 40 && /TLS files changed but were not reloaded/.test(l.msg));
    assert.match(warning.msg, /the previous certificate keeps serving: --tls-key .* does not match/);
    assert.equal((await servedCertificate(s.port, ['h2'])).serialNumber, serialOf(server1.cert));
    assert.equal((await servedCertificate(s.httpPort, ['http/1.1'])).serialNumber, serialOf(server1.cert));
    await withClient(grpcClient(s.port, { tls: { ca: pem(ca.cert) } }), async (c) => assert.equal((await predict(c)).model, 'mlp'));

    const missing = once(s.server.tls!, 'reload-failed');
    fs.rmSync(files.key);
    assert.match(((await missing) as [string])[0], /^--tls-key .*tls\.key: cannot read the file: no such file or directory \(ENOENT\)$/);
    assert.equal((await servedCertificate(s.port, ['h2'])).serialNumber, serialOf(server1.cert));

    const reloaded = once(s.server.tls!, 'reloaded');
    fs.copyFileSync(server2.key, files.key); // the pair is whole again
    await reloaded;
    assert.equal((await servedCertificate(s.port, ['h2'])).serialNumber, serialOf(server2.cert));
  } finally {
    await s.close();
  }
});

test('startup errors: one line naming the flag, the file and what was expected, and exit 1', TEST_TIMEOUT, async () => {
  const serveWith = async (args: string[]) => {
    const r = await cli(['serve', '--workers', '1', '--port', '0', '--http-port', '0', '--models', repo, '--log-format', 'json', ...args]);
    const fatal = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((l) => l.level === 60);
    assert.equal(r.code, 1, `exit code; stdout: ${r.stdout.slice(-1000)}`);
    assert.equal(fatal.length, 1, r.stdout);
    assert.equal(fatal[0].err, undefined, 'no stack trace for a mistake a person can fix');
    assert.equal(r.stderr, '');
    return fatal[0].msg as string;
  };
  const missing = path.join(tmp.dir, 'no-such.pem');
  assert.equal(await serveWith(['--tls-cert', missing, '--tls-key', server1.key]), `cannot start: --tls-cert ${missing}: cannot read the file: no such file or directory (ENOENT)`);
  assert.equal(
    await serveWith(['--tls-cert', server1.cert, '--tls-key', client.key]),
    `cannot start: --tls-key ${client.key} does not match the certificate in --tls-cert ${server1.cert} (CN=localhost): expected that certificate's private key`,
  );
  assert.equal(
    await serveWith(['--tls-cert', expired.cert, '--tls-key', expired.key]),
    `cannot start: --tls-cert ${expired.cert}: the certificate (CN=localhost) has expired: valid from 2020-01-01T00:00:00.000Z to 2020-01-02T00:00:00.000Z; renew it`,
  );
  assert.equal(await serveWith(['--tls-key', server1.key]), `cannot start: --tls-key ${server1.key} needs --tls-cert FILE: the certificate (PEM) whose key it is`);
});

test('plaintext on a non-loopback address logs one warning saying how to turn TLS on', TEST_TIMEOUT, async () => {
  const s = await startServer({ host: '0.0.0.0' });
  try {
    const warnings = s.log.lines.filter((l) => l.level === 40 && /plaintext/.test(l.msg));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.msg, /^the gRPC and HTTP ports on 0\.0\.0\.0 are plaintext .*--tls-cert FILE --tls-key FILE \(and --tls-client-ca FILE for mutual TLS\)/);
  } finally {
    await s.close();
  }
});

test('a client certificate is a principal: --auth-config mtls permits client-a and refuses client-b (same CA) on both ports', TEST_TIMEOUT, async () => {
  const policy = path.join(tmp.dir, 'policy.yaml');
  fs.writeFileSync(policy, "mtls: { principal: subject_cn }\npermissions:\n  - { principals: ['cert:spiffe://example.org/client-a'], models: [mlp], actions: [infer] }\n");
  const s = await startServer({ tlsCert: server1.cert, tlsKey: server1.key, tlsClientCa: ca.cert, authConfig: policy });
  try {
    const as = (who: CertFiles) => ({ ca: pem(ca.cert), cert: pem(who.cert), key: pem(who.key) });
    await withClient(grpcClient(s.port, { tls: as(client) }), async (c) => assert.equal((await predict(c)).model, 'mlp'));
    await withClient(grpcClient(s.port, { tls: as(clientB) }), (c) => expectStatus(predict(c), grpc.status.PERMISSION_DENIED, /cert:client-b/));
    const infer = (who: CertFiles) =>
      new Promise<number>((resolve, reject) => {
        const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32', data: new Array(64).fill(0) }] });
        const req = https.request({ host: '127.0.0.1', servername: 'localhost', port: s.httpPort, method: 'POST', path: '/v2/models/mlp/infer', headers: { 'content-type': 'application/json' }, ...as(who) }, (res) => {
          res.resume().on('end', () => resolve(res.statusCode!));
        });
        req.on('error', reject);
        req.end(body);
      });
    assert.equal(await infer(client), 200);
    assert.equal(await infer(clientB), 403);
  } finally {
    await s.close();
  }
});
