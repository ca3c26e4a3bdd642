/**
 * The server under fuzz: the real CLI (`tensorgate serve`) as a child process, so a crash shows as an exit
 * the fuzzer sees rather than taking the fuzzer down with it. Its JSON log lines are read as they come: the
 * ports from the listening line, readiness from the serving line, and any error-level line (an unhandled
 * rejection the server survived, a failure it logged) is kept as a finding.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { BUNDLED_MODELS_DIR, PACKAGE_ROOT } from '../src/paths';

/** pino's numeric levels: 50 error, 60 fatal. */
const ERROR_LEVEL = 50;

export interface FuzzServer {
  pid: number;
  grpcAddress: string;
  httpPort: number;
  /** Error-level log lines so far. */
  errorLines: string[];
  /** Whether the process is still running. */
  alive(): boolean;
  exitDescription(): string;
  /** The process's resident set size in bytes (VmRSS). */
  rss(): number;
  stop(): Promise<void>;
}

/**
 * The result cache is kept small (8 MiB, still exercised): at its default 256 MiB, distinct valid inputs would
 * fill it through the run and RSS would grow by design, hiding a leak behind it.
 */
export const SERVER_ARGS = ['--port', '0', '--http-port', '0', '--workers', '1', '--log-format', 'json', '--log-level', 'info', '--access-log', 'false', '--cache-max-bytes', String(8 << 20)];

export async function startServer(extraArgs: string[] = []): Promise<FuzzServer> {
  const child: ChildProcess = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist/src/cli/main.js'), 'serve', '--models', BUNDLED_MODELS_DIR, ...SERVER_ARGS, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let exit: [number | null, NodeJS.Signals | null] | undefined;
  const exited = once(child, 'exit').then((e) => (exit = e as [number | null, NodeJS.Signals | null]));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const errorLines: string[] = [];
  let listening: { grpc: string; http: number } | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: { level?: number; msg?: string; address?: string; httpPort?: number };
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      if ((line.level ?? 0) >= ERROR_LEVEL) errorLines.push(text.slice(0, 2000));
      if (line.msg?.startsWith('listening:') && line.address && line.httpPort) listening = { grpc: line.address, http: line.httpPort };
      if (line.msg?.startsWith('tensorgate serving on')) resolve();
    });
    void exited.then(() => reject(new Error(`the server exited before serving (${describe()}); stderr: ${stderr}`)));
  });
  // However the fuzzer ends (an exception, process.exit on a signal), the server does not outlive it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  const describe = () => (exit ? `code ${exit[0]}, signal ${exit[1]}` : 'running');
  await ready;
  if (!listening) throw new Error('the server never logged its ports');
  const pid = child.pid!;
  return {
    pid,
    grpcAddress: listening.grpc,
    httpPort: listening.http,
    errorLines,
    alive: () => exit === undefined,
    exitDescription: () => `${describe()}; stderr: ${stderr.slice(-2000)}`,
    rss: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : 0;
    },
    async stop() {
      if (exit) return;
      child.kill('SIGTERM');
      // The drain waits for calls in flight; a second signal (or a kill) ends a server that does not stop.
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
