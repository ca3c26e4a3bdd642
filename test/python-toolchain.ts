/**
 * Running external programs from tests (Debian's python3 with grpcio and protobuf, protoc, buf, the CLI):
 * through execFile with a generous timeout (slow 2-core CI machines), never a shell; no sleeps.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const PROCESS_TIMEOUT_MS = 120_000;
export const PYTHON = '/usr/bin/python3';
const DEBIAN_PACKAGES = ['python3-grpcio', 'python3-protobuf', 'protobuf-compiler'];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; never rejects for a non-zero exit (callers assert on `code`). */
export function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: PROCESS_TIMEOUT_MS, maxBuffer: 32 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
      if (typeof e.code === 'string') return reject(new Error(`cannot run ${file}: ${e.message}`)); // ENOENT, EACCES...
      if (e.killed || e.signal) return reject(new Error(`${file} ${args.join(' ')} killed (${e.signal}) after ${PROCESS_TIMEOUT_MS} ms\nstderr: ${stderr}`));
      resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout, stderr });
    });
  });
}

/** Runs a program that must succeed and returns its stdout; the failure message carries stderr. */
export async function ok(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(file, args, env);
  assert.equal(r.code, 0, `${path.basename(file)} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

export function parseJson(text: string, what: string): any {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what} did not print JSON:\n${text}`);
  }
}

/** Fails with the Debian packages to install when the Python toolchain is missing. */
export async function requirePythonToolchain(): Promise<void> {
  const missing: string[] = [];
  const pythonOk = fs.existsSync(PYTHON);
  if (!pythonOk) missing.push('python3');
  const protoc = await run('protoc', ['--version']).catch(() => undefined);
  if (!protoc || protoc.code !== 0) missing.push('protobuf-compiler (protoc)');
  if (pythonOk) {
    for (const [module, pkg] of [['grpc', 'python3-grpcio'], ['google.protobuf', 'python3-protobuf']]) {
      const r = await run(PYTHON, ['-c', `import ${module}`], pythonEnv());
      if (r.code !== 0) missing.push(`${pkg} (${PYTHON} cannot import ${module})`);
    }
  }
  if (missing.length > 0) {
    assert.fail(
      `the cross-language Python test needs Debian packages that are not installed: ${missing.join(', ')}.\n` +
        `Install them with: apt-get install -y --no-install-recommends ${DEBIAN_PACKAGES.join(' ')}  (.ci/run does this)`,
    );
  }
}

/** Debian's python with Debian's packages only: no pyenv/virtualenv/user-site modules leaking in. */
export function pythonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONNOUSERSITE: '1', PYTHONDONTWRITEBYTECODE: '1' };
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  delete env.VIRTUAL_ENV;
  return env;
}

