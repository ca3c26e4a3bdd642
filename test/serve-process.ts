/**
 * The real `tensorgate serve` as a child process (dist/src/cli/main.js) with JSON logs, for tests of the CLI's
 * process behaviour: its log lines as they come, and waits for a line (events, never sleeps).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { PACKAGE_ROOT } from './common';

export interface LogLine {
  msg: string;
  [key: string]: unknown;
}

export interface ServeProcess {
  child: ChildProcess;
  lines: LogLine[];
  /** Resolves with the first line (already seen or to come) that matches; rejects if the process exits first. */
  waitFor(match: (l: LogLine) => boolean): Promise<LogLine>;
  /** Resolves with [code, signal] once the process has exited. */
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** What the process wrote to stderr so far. */
  stderr(): string;
}

export function startServe(args: string[]): ServeProcess {
  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist/src/cli/main.js'), 'serve', '--log-format', 'json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text);
    } catch {
      return;
    }
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const waitFor = (match: (l: LogLine) => boolean): Promise<LogLine> => {
    const seen = lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      waiters.push({ match, resolve });
      exited.then(([code, signal]) => reject(new Error(`serve exited (code ${code}, signal ${signal}) before the line awaited; stderr: ${stderr.slice(-2000)}`)));
    });
  };
  return { child, lines, waitFor, exited, stderr: () => stderr };
}

/** Prometheus text exposition as samples (name, labels, value); comments skipped. */
export function parseExposition(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}
