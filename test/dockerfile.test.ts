/**
 * The container image without a Docker engine: the Dockerfile is parsed and held to its essentials
 * (multi-stage build, production-only dependencies, non-root user, health check, exec-form entrypoint), its
 * build context is checked against .dockerignore, and the pieces the image runs are run here for real:
 * deploy/healthcheck.js against a live server, and the ENTRYPOINT + CMD + ENV + HEALTHCHECK of the runtime
 * stage as one container lifecycle (start, healthy, SIGTERM, exit 0).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { isBuiltin } from 'node:module';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { PACKAGE_ROOT, startTestServer, type TestServer } from './common';

const PROCESS_TIMEOUT_MS = 60_000;
const DOCKERFILE = path.join(PACKAGE_ROOT, 'Dockerfile');
const HEALTHCHECK_SCRIPT = 'deploy/healthcheck.js';

// ---------------------------------------------------------------------------------------------- parsing

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  from: string;
  name: string;
  instructions: Instruction[];
}

/** Dockerfile instructions: comments dropped (also inside continuations), `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { parts: string[]; line: number } | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (trimmed === '' && !pending)) return;
    const continues = /\\\s*$/.test(raw);
    const part = continues ? raw.replace(/\\\s*$/, '') : raw;
    if (pending) pending.parts.push(part.trim());
    else pending = { parts: [part.trim()], line: i + 1 };
    if (!continues) {
      const joined = pending.parts.filter(Boolean).join(' ');
      const m = /^(\S+)\s*(.*)$/.exec(joined)!;
      out.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: pending.line });
      pending = undefined;
    }
  });
  assert.equal(pending, undefined, 'the Dockerfile ends inside a line continuation');
  return out;
}

function stages(instructions: Instruction[]): { globalArgs: Map<string, string>; stages: Stage[] } {
  const globalArgs = new Map<string, string>();
  const result: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `line ${ins.line}: cannot read FROM ${ins.args}`);
      const from = m[1].replace(/\$\{?(\w+)\}?/g, (_, name: string) => globalArgs.get(name) ?? `<unset ${name}>`);
      result.push({ from, name: m[2] ?? '', instructions: [] });
    } else if (result.length === 0) {
      assert.equal(ins.keyword, 'ARG', `line ${ins.line}: only ARG may come before the first FROM`);
      const [name, value = ''] = ins.args.split('=');
      globalArgs.set(name, value.replace(/^"|"$/g, ''));
    } else {
      result[result.length - 1].instructions.push(ins);
    }
  }
  return { globalArgs, stages: result };
}

function all(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

function last(stage: Stage, keyword: string): Instruction | undefined {
  return all(stage, keyword).at(-1);
}

/** An exec-form (JSON array) argument, or a failed assertion saying it is in shell form. */
function execForm(ins: Instruction | undefined, what: string): string[] {
  assert.ok(ins, `the runtime stage has no ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(ins.args);
  } catch {
    assert.fail(`line ${ins.line}: ${what} must use the exec form ["..."] (shell form puts /bin/sh in front of node): ${ins.args}`);
  }
  assert.ok(Array.isArray(value) && value.every((v) => typeof v === 'string'), `line ${ins.line}: ${what} is not a JSON array of strings`);
  return value;
}

/** `KEY=value KEY2="v 2"` pairs of ENV instructions (the legacy `ENV KEY value` form too). */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of all(stage, 'ENV')) {
    if (!ins.args.includes('=')) {
      const [key, ...rest] = ins.args.split(/\s+/);
      env[key] = rest.join(' ');
      continue;
    }
    for (const m of ins.args.matchAll(/(\w+)=("([^"]*)"|\S*)/g)) env[m[1]] = m[3] ?? m[2];
  }
  return env;
}

/** COPY sources and destination, with --from / --chown options split off. */
function copies(stage: Stage): { from?: string; sources: string[]; dest: string; line: number }[] {
  return all(stage, 'COPY').map((ins) => {
    const words = ins.args.split(/\s+/);
    const options = words.filter((w) => w.startsWith('--'));
    const paths = words.filter((w) => !w.startsWith('--'));
    const from = options.find((o) => o.startsWith('--from='))?.slice('--from='.length);
    return { from, sources: paths.slice(0, -1), dest: paths.at(-1)!, line: ins.line };
  });
}

/** .dockerignore semantics: a path is excluded when it or a parent folder matches; the last matching rule wins. */
function dockerignore(text: string): (relPath: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ''));
      const re = pattern
        .split('/')
        .map((seg) => (seg === '**' ? '.*' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?');
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (relPath: string) => {
    const parts = relPath.split('/');
    let excluded = false;
    for (const rule of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (rule.re.test(parts.slice(0, n).join('/'))) {
          excluded = !rule.negate;
          break;
        }
      }
    }
    return excluded;
  };
}

function filesUnder(rel: string): string[] {
  const abs = path.join(PACKAGE_ROOT, rel);
  if (!fs.statSync(abs).isDirectory()) return [rel];
  return fs.readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.posix.join(rel, path.relative(abs, path.join(d.parentPath ?? (d as unknown as { path: string }).path, d.name)).split(path.sep).join('/')));
}

/** Bare package names a CommonJS file requires (node: and built-in modules left out). */
function requiredPackages(file: string): string[] {
  const names = new Set<string>();
  for (const m of fs.readFileSync(file, 'utf8').matchAll(/\brequire\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    const spec = m[1];
    if (spec.startsWith('.') || spec.startsWith('/') || isBuiltin(spec)) continue;
    names.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
  }
  return [...names];
}

const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const parsed = stages(parseDockerfile(fs.readFileSync(DOCKERFILE, 'utf8')));
const build = parsed.stages[0];
const runtime = parsed.stages.at(-1)!;

// ---------------------------------------------------------------------------------------------- static checks

test('Dockerfile: multi-stage, named stages on a Node LTS slim image', () => {
  assert.ok(parsed.stages.length >= 2, `expected a build and a runtime stage, found ${parsed.stages.length} FROM`);
  for (const s of parsed.stages) {
    assert.ok(s.name, `FROM ${s.from} has no "AS name"`);
    assert.match(s.from, /^node:(2[02468])(\.\d+)*-(bookworm|trixie)-slim(@sha256:[0-9a-f]{64})?$/, `stage ${s.name} base image`);
  }
  assert.equal(new Set(parsed.stages.map((s) => s.name)).size, parsed.stages.length, 'stage names are unique');
});

test('Dockerfile: the build stage installs with .npmrc in place, builds, and prunes dev dependencies', () => {
  const ins = build.instructions;
  const npmrc = ins.findIndex((i) => i.keyword === 'COPY' && /(^|\s)\.npmrc(\s|$)/.test(i.args));
  const ci = ins.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
  const runs = ins.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
  assert.ok(npmrc >= 0, 'the build stage copies .npmrc');
  assert.ok(ci >= 0, 'the build stage runs npm ci');
  assert.ok(npmrc < ci, '.npmrc is copied before npm ci');
  assert.match(runs, /\bnpm run build\b/);
  assert.match(runs, /\bnpm prune --omit=dev\b/);
  assert.match(fs.readFileSync(path.join(PACKAGE_ROOT, '.npmrc'), 'utf8'), /^onnxruntime-node-install=skip$/m, '.npmrc skips the CUDA download');
});

test('Dockerfile: the runtime stage takes node_modules and dist from the build, runs as a non-root user', () => {
  const fromBuild = copies(runtime).filter((c) => c.from === build.name).flatMap((c) => c.sources);
  for (const p of ['/app/node_modules', '/app/dist']) assert.ok(fromBuild.includes(p), `runtime copies ${p} from ${build.name}: ${fromBuild.join(', ')}`);
  const fromContext = copies(runtime).filter((c) => !c.from).flatMap((c) => c.sources);
  for (const p of ['package.json', 'proto', 'models', HEALTHCHECK_SCRIPT]) assert.ok(fromContext.includes(p), `runtime copies ${p}`);
  assert.ok(!all(runtime, 'RUN').some((r) => /\bnpm (ci|install)\b/.test(r.args)), 'the runtime stage installs nothing');

  const user = last(runtime, 'USER');
  assert.ok(user, 'the runtime stage sets USER');
  assert.doesNotMatch(user.args, /^(root|0)(:|$)/, 'USER is not root');
  const entrypoint = last(runtime, 'ENTRYPOINT')!;
  assert.ok(user.line < entrypoint.line, 'USER comes before ENTRYPOINT');
});

test('Dockerfile: env, ports, health check, stop signal and exec-form entrypoint', () => {
  const env = envOf(runtime);
  assert.equal(env.TENSORGATE_HOST, '0.0.0.0', 'the server listens on every interface in the container');
  const exposed = all(runtime, 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => p.replace(/\/tcp$/, ''));
  assert.ok(exposed.includes('50051'), `EXPOSE ${exposed.join(' ')}`);
  assert.ok(exposed.includes('8080'), `EXPOSE ${exposed.join(' ')}`);

  const hc = last(runtime, 'HEALTHCHECK');
  assert.ok(hc, 'the runtime stage has a HEALTHCHECK');
  const m = /^((?:--\S+\s+)*)CMD\s+(.*)$/.exec(hc.args);
  assert.ok(m, `HEALTHCHECK must be "[options] CMD [...]": ${hc.args}`);
  const hcCmd = execForm({ ...hc, args: m[2] }, 'HEALTHCHECK CMD');
  assert.deepEqual(hcCmd, ['node', HEALTHCHECK_SCRIPT]);
  const timeout = /--timeout=(\d+)s/.exec(m[1]);
  assert.ok(timeout && Number(timeout[1]) > 3, 'HEALTHCHECK --timeout leaves room for the probe\'s 3 s deadline');

  assert.equal(last(runtime, 'STOPSIGNAL')?.args, 'SIGTERM');
  assert.deepEqual(execForm(last(runtime, 'ENTRYPOINT'), 'ENTRYPOINT'), ['node', 'dist/src/cli/main.js']);
  assert.deepEqual(execForm(last(runtime, 'CMD'), 'CMD'), ['serve']);
  assert.equal(last(runtime, 'WORKDIR')?.args, '/app');
});

test('.dockerignore keeps host builds out and every file the Dockerfile copies in', () => {
  const ignored = dockerignore(fs.readFileSync(path.join(PACKAGE_ROOT, '.dockerignore'), 'utf8'));
  for (const p of ['node_modules/x', 'dist/src/server.js', '.git/HEAD', 'bench/results/run.json']) assert.ok(ignored(p), `${p} is ignored`);
  const sources = parsed.stages.flatMap((s) => copies(s).filter((c) => !c.from).flatMap((c) => c.sources));
  for (const source of sources) {
    const rel = source.replace(/^\.\//, '');
    assert.ok(fs.existsSync(path.join(PACKAGE_ROOT, rel)), `COPY ${rel}: no such file in the repository`);
    const files = filesUnder(rel);
    assert.ok(files.length > 0, `COPY ${rel} copies nothing`);
    for (const f of files) assert.ok(!ignored(f), `COPY ${rel}: ${f} is excluded by .dockerignore`);
  }
});

test('the image needs no development dependency at run time', () => {
  // npm prune --omit=dev removes devDependencies: whatever dist/src and the probe require must be a dependency.
  const files = [path.join(PACKAGE_ROOT, HEALTHCHECK_SCRIPT)];
  const distSrc = path.join(PACKAGE_ROOT, 'dist', 'src');
  for (const f of fs.readdirSync(distSrc, { recursive: true }) as string[]) {
    // Only files compiled from a current src/ file (dist/ may hold leftovers of deleted sources).
    if (f.endsWith('.js') && fs.existsSync(path.join(PACKAGE_ROOT, 'src', f.replace(/\.js$/, '.ts')))) files.push(path.join(distSrc, f));
  }
  assert.ok(files.some((f) => f.endsWith(path.join('cli', 'main.js'))), 'dist/src/cli/main.js (the ENTRYPOINT) is built');
  for (const file of files) {
    for (const name of requiredPackages(file)) {
      assert.ok(name in pkg.dependencies, `${path.relative(PACKAGE_ROOT, file)} requires ${name}, which is not in package.json dependencies`);
    }
  }
});

// ---------------------------------------------------------------------------------------------- deploy/healthcheck.js

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the image's HEALTHCHECK command from the package root (the image's WORKDIR). */
function probe(env: Record<string, string>, args: string[] = []): Promise<RunResult> {
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!('TENSORGATE_HEALTHCHECK_ADDRESS' in env)) delete baseEnv.TENSORGATE_HEALTHCHECK_ADDRESS;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [HEALTHCHECK_SCRIPT, ...args],
      { cwd: PACKAGE_ROOT, env: baseEnv, timeout: PROCESS_TIMEOUT_MS, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as { code?: number | string; killed?: boolean };
        if (typeof e.code !== 'number') return reject(new Error(`healthcheck.js did not finish: ${err.message}\n${stderr}`));
        resolve({ code: e.code, stdout, stderr });
      },
    );
  });
}

let ts: TestServer;
let closed = false;

before(async () => {
  ts = await startTestServer();
});

after(async () => {
  if (ts && !closed) await ts.close();
});

test('healthcheck.js exits 0 while the server is SERVING', async () => {
  const r = await probe({ TENSORGATE_PORT: String(ts.port) });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /SERVING/);
  const service = await probe({ TENSORGATE_PORT: String(ts.port) }, ['tensorgate.v1.ModelService']);
  assert.equal(service.code, 0, service.stderr);
  const byAddress = await probe({ TENSORGATE_PORT: '1', TENSORGATE_HEALTHCHECK_ADDRESS: ts.address });
  assert.equal(byAddress.code, 0, byAddress.stderr);
});

test('healthcheck.js exits 1 when the server reports NOT_SERVING, 0 again once SERVING', async () => {
  ts.server.health.setStatus('', 'NOT_SERVING');
  try {
    const r = await probe({ TENSORGATE_PORT: String(ts.port) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /NOT_SERVING/);
  } finally {
    ts.server.health.setStatus('', 'SERVING');
  }
  assert.equal((await probe({ TENSORGATE_PORT: String(ts.port) })).code, 0);
});

test('healthcheck.js exits 1 for an unknown service and for a bad TENSORGATE_PORT', async () => {
  const unknown = await probe({ TENSORGATE_PORT: String(ts.port) }, ['no.such.Service']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /NOT_FOUND/);
  const bad = await probe({ TENSORGATE_PORT: 'http' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /not a port number/);
});

test('healthcheck.js dials the --port the server process was started with, before TENSORGATE_PORT', async () => {
  const port = await new Promise<number>((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.once('error', reject);
  });
  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist/src/cli/main.js'), 'serve', '--port', String(port), '--http-port', '0', '--workers', '1', '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const lines = readline.createInterface({ input: child.stdout! });
    for await (const line of lines) if (line.includes('tensorgate serving on')) break;
    child.stdout!.resume(); // keep draining its log so it never blocks on a full pipe
    const r = await probe({ TENSORGATE_PORT: '1', TENSORGATE_HEALTHCHECK_SERVER_PID: String(child.pid) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`127\\.0\\.0\\.1:${port} SERVING`));
  } finally {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
});

test('healthcheck.js exits 1 once the server has shut down', async () => {
  await ts.close();
  closed = true;
  const r = await probe({ TENSORGATE_PORT: String(ts.port) });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UNAVAILABLE/);
});

// ---------------------------------------------------------------------------------------------- container lifecycle

test('the runtime stage as a process: ENTRYPOINT + CMD with its ENV, healthy, then SIGTERM exits 0', async () => {
  const entrypoint = [...execForm(last(runtime, 'ENTRYPOINT'), 'ENTRYPOINT'), ...execForm(last(runtime, 'CMD'), 'CMD')];
  const hc = execForm({ ...last(runtime, 'HEALTHCHECK')!, args: last(runtime, 'HEALTHCHECK')!.args.replace(/^.*?CMD\s+/, '') }, 'HEALTHCHECK CMD');
  assert.equal(entrypoint[0], 'node');
  assert.equal(hc[0], 'node');
  // The image's ENV, except the port: 0 so parallel runs cannot collide; the probe then gets the bound port.
  const env: NodeJS.ProcessEnv = { ...process.env, ...envOf(runtime), TENSORGATE_PORT: '0', TENSORGATE_HTTP_PORT: '0', TENSORGATE_WORKERS: '1' };
  delete env.TENSORGATE_HEALTHCHECK_ADDRESS;
  const child = spawn(process.execPath, entrypoint.slice(1), { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    const ready = await new Promise<{ port: number; host: string }>((resolve, reject) => {
      readline.createInterface({ input: child.stdout! }).on('line', (text) => {
        try {
          const line = JSON.parse(text) as { msg?: string; port?: number; host?: string };
          if (line.msg?.startsWith('tensorgate serving on')) resolve(line as { port: number; host: string });
        } catch {
          // not a log line
        }
      });
      child.once('exit', (code) => reject(new Error(`the server exited (${code}) before serving:\n${stderr}`)));
    });
    assert.equal(ready.host, '0.0.0.0');
    const healthy = await probe({ TENSORGATE_PORT: String(ready.port) }, hc.slice(2));
    assert.equal(healthy.code, 0, healthy.stderr);

    child.kill(last(runtime, 'STOPSIGNAL')!.args as NodeJS.Signals);
    const [code, signal] = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, `exit status after SIGTERM; stderr:\n${stderr}`);
    const gone = await probe({ TENSORGATE_PORT: String(ready.port) });
    assert.equal(gone.code, 1);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
