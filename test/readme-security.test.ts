/**
 * The README's Security worked example, run as written: its first ```sh block (certificates, an API key, the
 * policy) in a temp folder standing in for a clone, its second (the serve command) as a real background server,
 * and its third (the CLI over TLS with a client certificate and the key; curl over HTTPS: the answer, a 401 and
 * a 403) against it, each block as one bash script so its variables and heredocs work as in a terminal.
 *
 * The only rewriting: the server listens on free ports (TENSORGATE_PORT=0 and TENSORGATE_HTTP_PORT=0 in its
 * environment; the command itself runs unchanged), and the client block's localhost:50051 and localhost:8080 become
 * the ports it logged.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { after, before, test } from 'node:test';
import { PACKAGE_ROOT, tempDir } from './common';

const SECTION = '## Security';
const CLONE_ENTRIES = ['package.json', 'package-lock.json', '.npmrc', 'node_modules', 'dist', 'models', 'proto'];
const TIMEOUT_MS = 120_000;

function shBlocks(markdown: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.trim() === SECTION);
  assert.ok(start >= 0, `README.md has no "${SECTION}" section`);
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  const blocks: string[] = [];
  let body: string[] | undefined;
  for (const raw of lines.slice(start, end)) {
    if (!body && raw.trim() === '```sh') body = [];
    else if (body && raw.trim() === '```') {
      blocks.push(body.join('\n'));
      body = undefined;
    } else body?.push(raw);
  }
  return blocks;
}

function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd, env, timeout: TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0, stdout, stderr }),
    );
  });
}

const blocks = shBlocks(fs.readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8'));
let tmp: { dir: string; cleanup: () => void };
let clone: string;
let env: NodeJS.ProcessEnv;
let server: ChildProcess | undefined;

before(() => {
  tmp = tempDir('readme-security');
  clone = path.join(tmp.dir, 'clone');
  fs.mkdirSync(clone);
  for (const entry of CLONE_ENTRIES) fs.symlinkSync(path.join(PACKAGE_ROOT, entry), path.join(clone, entry));
  env = { ...process.env, npm_config_cache: path.join(tmp.dir, 'npm-cache'), npm_config_ignore_scripts: 'true', npm_config_update_notifier: 'false' };
  for (const v of Object.keys(env)) if (v.startsWith('TENSORGATE_')) delete env[v];
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server!.once('exit', resolve));
    process.kill(-server.pid!, 'SIGTERM');
    await exited;
  }
  tmp?.cleanup();
});

test('the worked example: certificates, a key and a policy; a TLS + mTLS + policy server; calls that succeed, 401 and 403', async () => {
  assert.equal(blocks.length, 3, 'three sh blocks: setup, serve, calls');
  const [setup, serve, calls] = blocks as [string, string, string];

  const made = await bash(setup, clone, env);
  assert.equal(made.code, 0, `setup block failed:\n${made.stderr}`);
  for (const f of ['ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key', 'alice.txt', 'policy.yaml']) assert.ok(fs.existsSync(path.join(clone, f)), `${f} made`);

  assert.match(serve.trim(), /^npx tensorgate serve /);
  server = spawn('bash', ['-c', `exec ${serve.trim()}`], { cwd: clone, env: { ...env, TENSORGATE_PORT: '0', TENSORGATE_HTTP_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  server.stderr!.on('data', (d: Buffer) => (stderr += d));
  const ports = await new Promise<{ grpc: number; http: number }>((resolve, reject) => {
    let listening: { grpc: number; http: number } | undefined;
    readline.createInterface({ input: server!.stdout! }).on('line', (line) => {
      let entry: { msg?: string; address?: string; httpPort?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.address && entry.httpPort) listening = { grpc: Number(entry.address.split(':').pop()), http: entry.httpPort };
      if (listening && entry.msg?.startsWith('tensorgate serving on')) resolve(listening);
    });
    server!.once('exit', (code) => reject(new Error(`the README's serve command exited ${code} before serving: ${stderr.slice(-2000)}`)));
  });

  const script = calls.replaceAll('localhost:50051', `localhost:${ports.grpc}`).replaceAll('localhost:8080', `localhost:${ports.http}`);
  const r = await bash(script, clone, env);
  assert.equal(r.code, 0, `the calls block failed:\n${r.stderr}\n${r.stdout}`);
  // The CLI's JSON, curl's metadata JSON, then the two status codes.
  const predicted = r.stdout.match(/^\{[\s\S]*?^\}$/m);
  assert.ok(predicted, `tensorgate predict printed JSON: ${r.stdout}`);
  assert.equal(JSON.parse(predicted[0]).output_text, 'positive');
  const lines = r.stdout.slice(predicted.index! + predicted[0].length).trim().split('\n');
  assert.equal(JSON.parse(lines[0]!).name, 'sentiment', `metadata: ${lines[0]}`);
  assert.deepEqual(lines.slice(1), ['401', '403']);
});
