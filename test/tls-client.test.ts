/**
 * The client half of issue 14's TLS, and TlsFiles' checks one by one: a real grpc-js server that echoes what
 * it received (the authorization metadata and the client certificate as a PeerIdentity) to the real clients
 * and CLI; each bad TLS file's one-line error; the expiry warning; the loopback and SAN helpers.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { inferenceServiceDefinition, modelServiceDefinition } from '../src/api/grpc/protos';
import { createInferenceClient, v2Call } from '../src/client/inference-client';
import { createModelClient, unary } from '../src/client/model-client';
import { grpcPeerIdentity, splitSubjectAltName } from '../src/security/peer-identity';
import { grpcServerCredentials, isLoopbackHost, TlsFiles, TlsFilesError, type TlsSettings } from '../src/security/tls-files';
import { cli } from './cli-process';
import { tempDir } from './common';
import { makeCa, makeDatedLeaf, makeLeaf, type CertFiles } from './tls-certs';

const TEST_TIMEOUT = { timeout: 120_000 };
let tmp: { dir: string; cleanup: () => void };
let ca: CertFiles, server: CertFiles, client: CertFiles, future: CertFiles, soon: CertFiles;
const pem = (file: string) => fs.readFileSync(file);

before(async () => {
  tmp = tempDir('tls-client');
  const d = tmp.dir;
  ca = await makeCa(d, 'ca');
  [server, client, future, soon] = await Promise.all([
    makeLeaf(d, 'server', ca, { cn: 'localhost', san: 'DNS:localhost,IP:127.0.0.1', usage: 'serverAuth' }),
    makeLeaf(d, 'client', ca, { cn: 'client-a', san: 'URI:spiffe://example.org/client-a,DNS:client-a.test', usage: 'clientAuth' }),
    makeDatedLeaf(d, 'future', ca, { cn: 'localhost', san: 'DNS:localhost', start: '20990101000000Z', end: '20990102000000Z' }),
    makeLeaf(d, 'soon', ca, { cn: 'localhost', san: 'DNS:localhost', usage: 'serverAuth', days: 2 }),
  ]);
});
after(() => tmp.cleanup());

const settings = (s: Partial<TlsSettings>): TlsSettings => ({ tlsReloadSecs: 10, ...s });

test('clients send the token as authorization: Bearer on every call, plaintext and TLS; the server reads the client certificate', TEST_TIMEOUT, async () => {
  const files = TlsFiles.fromSettings(settings({ tlsCert: server.cert, tlsKey: server.key, tlsClientCa: ca.cert }))!;
  files.load();
  // What the server saw, echoed back: ModelInfo names carry the authorization value and the peer identity.
  const seen = (call: grpc.ServerUnaryCall<unknown, unknown>) => ({
    auth: String(call.metadata.get('authorization')[0] ?? ''),
    peer: JSON.stringify(grpcPeerIdentity(call) ?? null),
  });
  const echo = new grpc.Server();
  echo.addService(modelServiceDefinition(), {
    ListModels: (call: grpc.ServerUnaryCall<unknown, unknown>, done: grpc.sendUnaryData<unknown>) => {
      const s = seen(call);
      done(null, { models: [{ name: s.auth }, { name: s.peer }] });
    },
  });
  echo.addService(inferenceServiceDefinition(), {
    ServerMetadata: (call: grpc.ServerUnaryCall<unknown, unknown>, done: grpc.sendUnaryData<unknown>) => done(null, { name: seen(call).auth, version: '', extensions: [] }),
  });
  const bind = (creds: grpc.ServerCredentials) => new Promise<number>((resolve, reject) => echo.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
  const plainPort = await bind(grpc.ServerCredentials.createInsecure());
  const tlsPort = await bind(grpcServerCredentials(files));
  const list = async (c: ReturnType<typeof createModelClient>, metadata?: grpc.Metadata) => {
    try {
      const res = await unary(c, 'ListModels', {}, { deadlineMs: 20_000, metadata });
      return { auth: res.models[0].name as string, peer: JSON.parse(res.models[1].name) };
    } finally {
      c.close();
    }
  };
  try {
    assert.deepEqual(await list(createModelClient(`127.0.0.1:${plainPort}`, {}, { security: { token: 'tok-1' } })), { auth: 'Bearer tok-1', peer: null });
    const own = new grpc.Metadata();
    own.set('authorization', 'Bearer per-call');
    assert.equal((await list(createModelClient(`127.0.0.1:${plainPort}`, {}, { security: { token: 'tok-1' } }), own)).auth, 'Bearer per-call', "a call's own authorization wins");
    assert.deepEqual(await list(createModelClient(`127.0.0.1:${plainPort}`)), { auth: '', peer: null }, 'no token: no authorization');

    const mtls = { ca: pem(ca.cert), cert: pem(client.cert), key: pem(client.key) };
    assert.deepEqual(await list(createModelClient(`localhost:${tlsPort}`, {}, { security: { tls: mtls, token: 'tok-2' } })), {
      auth: 'Bearer tok-2',
      peer: { subject: 'client-a', sans: ['URI:spiffe://example.org/client-a', 'DNS:client-a.test'], fingerprint256: new X509Certificate(pem(client.cert)).fingerprint256 },
    });
    const tlsOwn = new grpc.Metadata();
    tlsOwn.set('authorization', 'Bearer per-call');
    assert.equal((await list(createModelClient(`localhost:${tlsPort}`, {}, { security: { tls: mtls, token: 'tok-2' } }), tlsOwn)).auth, 'Bearer per-call');
    const v2 = createInferenceClient(`localhost:${tlsPort}`, false, {}, { tls: mtls, token: 'tok-3' });
    try {
      assert.equal((await v2Call(v2, 'ServerMetadata', {}, 20_000)).name, 'Bearer tok-3');
    } finally {
      v2.close();
    }

    // The CLI: --token, then TENSORGATE_TOKEN; a token that cannot be a header value is refused before any call.
    const byFlag = await cli(['models', '--address', `localhost:${tlsPort}`, '--tls-ca', ca.cert, '--tls-cert', client.cert, '--tls-key', client.key, '--token', 'tok-4']);
    assert.equal(byFlag.code, 0, byFlag.stderr);
    assert.match(byFlag.stdout, /^Bearer tok-4 /m);
    process.env.TENSORGATE_TOKEN = 'tok-5';
    try {
      const byEnv = await cli(['models', '--address', `127.0.0.1:${plainPort}`]);
      assert.equal(byEnv.code, 0, byEnv.stderr);
      assert.match(byEnv.stdout, /^Bearer tok-5 /m);
    } finally {
      delete process.env.TENSORGATE_TOKEN;
    }
    const bad = await cli(['models', '--address', `127.0.0.1:${plainPort}`, '--token', 'two words']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'tensorgate: --token (or TENSORGATE_TOKEN): expected a bearer token of visible ASCII characters (no spaces, line breaks or quotes around it)\n');
    const unreadable = await cli(['models', '--tls-ca', path.join(tmp.dir, 'none.pem')]);
    assert.equal(unreadable.stderr, `tensorgate: --tls-ca ${path.join(tmp.dir, 'none.pem')}: cannot read the file: no such file or directory (ENOENT)\n`);
  } finally {
    echo.forceShutdown();
    files.stop();
  }
});

test('TlsFiles: each bad file or flag combination is one error naming the flag, the file and what was expected', () => {
  const write = (name: string, text: string) => {
    const file = path.join(tmp.dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const load = (s: Partial<TlsSettings>) => () => TlsFiles.fromSettings(settings(s))!.load();
  const notPem = write('hello.txt', 'hello\n');
  const brokenBlock = write('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  assert.equal(TlsFiles.fromSettings(settings({})), undefined, 'no TLS flags: plaintext');
  const cases: [Partial<TlsSettings>, RegExp][] = [
    [{ tlsCert: server.cert }, /^--tls-cert \S+ needs --tls-key FILE: the certificate's private key \(PEM\)$/],
    [{ tlsClientCa: ca.cert }, /^--tls-client-ca \S+ needs --tls-cert FILE and --tls-key FILE/],
    [{ tlsCert: notPem, tlsKey: server.key }, /^--tls-cert \S+hello\.txt is not a PEM certificate: expected a '-----BEGIN CERTIFICATE-----' block$/],
    [{ tlsCert: server.key, tlsKey: server.cert }, /is not a PEM certificate: expected a '-----BEGIN CERTIFICATE-----' block \(it holds a private key: are --tls-cert and --tls-key swapped\?\)$/],
    [{ tlsCert: brokenBlock, tlsKey: server.key }, /^--tls-cert \S+broken\.pem: certificate 1 of 1 cannot be parsed \(.+\); expected a PEM certificate$/],
    [{ tlsCert: future.cert, tlsKey: future.key }, /the certificate \(CN=localhost\) is not valid yet: valid from 2099-01-01T00:00:00\.000Z to 2099-01-02T00:00:00\.000Z; check the clock/],
    [{ tlsCert: server.cert, tlsKey: notPem }, /^--tls-key \S+hello\.txt is not a PEM private key \(.+\): expected a '-----BEGIN PRIVATE KEY-----' block$/],
    [{ tlsCert: server.cert, tlsKey: server.key, tlsClientCa: notPem }, /^--tls-client-ca \S+hello\.txt is not a PEM CA certificate bundle: expected a '-----BEGIN CERTIFICATE-----' block$/],
    [{ tlsCert: server.cert, tlsKey: server.key, tlsClientCa: brokenBlock }, /^--tls-client-ca \S+broken\.pem: certificate 1 of 1 cannot be parsed/],
  ];
  for (const [s, message] of cases) assert.throws(load(s), (err: Error) => err instanceof TlsFilesError && message.test(err.message) && !err.message.includes('\n'), JSON.stringify(s));
  assert.equal(TlsFiles.fromSettings(settings({ tlsCert: server.cert, tlsKey: server.key, tlsClientCa: ca.cert }))!.load().subject, 'CN=localhost');
});

test('TlsFiles warns when the certificate expires within 7 days, and its poll timer never holds the process', TEST_TIMEOUT, async () => {
  const files = TlsFiles.fromSettings(settings({ tlsCert: soon.cert, tlsKey: soon.key }))!;
  const m = files.load();
  const warned = new Promise((resolve) => files.once('expiring', resolve));
  files.start();
  assert.equal(await warned, m);
  files.stop();
  // A process that started the poll and never stopped it still exits by itself (the timer is unref'd).
  const script = `const { TlsFiles } = require(${JSON.stringify(require.resolve('../src/security/tls-files'))});
    const f = TlsFiles.fromSettings({ tlsCert: ${JSON.stringify(server.cert)}, tlsKey: ${JSON.stringify(server.key)}, tlsReloadSecs: 0.1 });
    f.load(); f.start(); console.log('started');`;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { timeout: 60_000 });
  assert.equal(stdout, 'started\n');
});

test('loopback hosts stay quiet in plaintext; subjectAltName entries split as node writes them', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST']) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '128.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
  assert.deepEqual(splitSubjectAltName('DNS:a.test, URI:spiffe://x/y, IP Address:127.0.0.1'), ['DNS:a.test', 'URI:spiffe://x/y', 'IP Address:127.0.0.1']);
  // node quotes a value holding a comma, JSON style with the comma escaped (as Node 20 printed it for a real
  // certificate whose URI SAN was 'http://x/?a=1, b'), so that the list stays unambiguous.
  assert.deepEqual(splitSubjectAltName('URI:"http://x/?a=1\\u002c b", DNS:c'), ['URI:http://x/?a=1, b', 'DNS:c']);
  assert.deepEqual(splitSubjectAltName('URI:"a\\"b", DNS:c'), ['URI:a"b', 'DNS:c']);
  assert.deepEqual(splitSubjectAltName(undefined), []);
});
