/**
 * What a person meets when `tensorgate serve` cannot start: one line naming what to change, from the real
 * CLI process; and log lines a person can read at a terminal.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as net from 'node:net';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { createLogger, logDestination } from '../src/log';
import { PACKAGE_ROOT } from './common';

let holder: net.Server;
let takenPort: number;

before(async () => {
  holder = net.createServer().listen(0, '127.0.0.1');
  await once(holder, 'listening');
  takenPort = (holder.address() as net.AddressInfo).port;
});
after(() => holder.close());

/** Runs `tensorgate serve ARGS` to its exit; JSON logs, since the output is not a terminal. */
async function serve(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist/src/cli/main.js'), 'serve', '--workers', '1', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const [code] = await once(child, 'exit');
  return { code, stdout, stderr };
}

const fatal = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((l) => l.level === 60);

test('a gRPC port already in use ends with one line naming the port and the flag, and nothing from grpc-js', async () => {
  const r = await serve(['--port', String(takenPort), '--http-port', '0']);
  assert.equal(r.code, 1);
  const lines = fatal(r.stdout);
  assert.equal(lines.length, 1);
  assert.equal(lines[0].msg, `cannot start: cannot listen for gRPC on 127.0.0.1:${takenPort}: the port is already in use; choose another port with --port N or TENSORGATE_PORT (0 picks a free one)`);
  assert.equal(lines[0].err, undefined, 'no stack trace for a mistake a person can fix');
  assert.equal(r.stderr, '', 'grpc-js wrote nothing of its own');
});

test('an HTTP port already in use names --http-port', async () => {
  const r = await serve(['--port', '0', '--http-port', String(takenPort)]);
  assert.equal(r.code, 1);
  assert.match(fatal(r.stdout)[0]?.msg ?? '', new RegExp(`cannot listen for HTTP on 127\\.0\\.0\\.1:${takenPort}: the port is already in use; choose another port with --http-port N`));
});

test('a bad flag value names the flag, the value and the expected form', async () => {
  const r = await serve(['--port', 'abc', '--cache-max-bytes=-1']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^tensorgate: invalid settings: --port "abc": expected number, received NaN \(--port: gRPC port/);
  assert.match(r.stderr, /--cache-max-bytes "-1": Too small: expected number to be >=0 \(--cache-max-bytes: result cache size/);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  const env = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist/src/cli/main.js'), 'serve'], { env: { ...process.env, TENSORGATE_LOG_LEVEL: 'loud' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', () => resolve(err));
  });
  assert.match(env, /invalid setting: TENSORGATE_LOG_LEVEL "loud": .*\(--log-level: fatal\|error\|warn\|info\|debug\|trace\|silent/);
});

test('log lines: readable for a terminal, JSON for machines', () => {
  const capture = () => {
    const lines: string[] = [];
    return { lines, stream: new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) }) };
  };
  assert.equal(logDestination('auto', false), undefined, 'not a terminal: plain JSON on stdout');
  assert.equal(logDestination('json', true), undefined);
  const out = capture();
  createLogger('info', logDestination('pretty', false, out.stream)).info({ model: 'mlp' }, 'model mlp version 1 READY');
  const text = out.lines.join('');
  assert.match(text, /INFO.*model mlp version 1 READY/);
  assert.match(text, /model: "mlp"/);
  assert.throws(() => JSON.parse(text), 'not JSON');
});
