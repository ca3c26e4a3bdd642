/** Runs the built `tensorgate` CLI as a user does: its own Node process, its exit code, stdout and stderr. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { PACKAGE_ROOT } from './common';

const PROCESS_TIMEOUT_MS = 120_000;
export const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion, writing `stdin` (when given) to it; never rejects for a non-zero exit. */
export async function cli(args: string[], stdin?: string): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), PROCESS_TIMEOUT_MS);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => undefined); // a CLI that exits before reading stdin closes the pipe: its exit code tells
  child.stdin.end(stdin);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(killer);
  return { code, stdout, stderr };
}
