/**
 * The parent side of the child processes: fork an entry, wait for `ready`, ask for stats, stop it.
 * Every child ever started is SIGKILLed when this process exits for any reason (an error, Ctrl-C), so
 * a failed benchmark never leaves a server holding a core.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { createModelClient, unary } from '../src/client/model-client';
import type { EntryStats } from './entry-ipc';
import { predictRequest, type BenchModel } from './workload';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\nbench: ${signal}, stopping children`);
    process.exit(130);
  });
}

/** A compiled bench entry beside this file (dist/bench/<name>.js). */
export function entryPath(name: string): string {
  return path.join(__dirname, `${name}.js`);
}

function spawn(script: string, args: string[], execArgv: string[], env?: NodeJS.ProcessEnv, stdout?: (line: string) => void): ChildProcess {
  const child = fork(script, args, { execArgv, env: env ?? process.env, stdio: ['ignore', stdout ? 'pipe' : 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  if (stdout && child.stdout) readline.createInterface({ input: child.stdout }).on('line', stdout);
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

function exitError(script: string, code: number | null, signal: NodeJS.Signals | null): Error {
  return new Error(`${path.basename(script)} exited (code ${code}, signal ${signal}) before answering`);
}

/** A long-lived server child (tensorgate or no-op) speaking the entry-ipc protocol. */
export class ServerChild {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (m: any) => void; reject: (e: Error) => void }>();

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    readonly port: number,
    /** 0 when the entry serves no HTTP port. */
    readonly httpPort: number,
  ) {
    child.on('message', (m: { id?: number }) => {
      const w = m.id !== undefined ? this.waiting.get(m.id) : undefined;
      if (!w) return;
      this.waiting.delete(m.id!);
      w.resolve(m);
    });
    child.once('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.reject(exitError(name, code, signal));
      this.waiting.clear();
    });
    // A send to a child that already exited surfaces here (and in send's callback), not as a crash.
    child.on('error', () => undefined);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** `env`: the child's whole environment (default: this process's). */
  /** `script`: run that file instead of this build's entry (e.g. another build's, for a before/after A/B). */
  /** `stdout`: gets each line the child writes to stdout (e.g. V8's `--trace-gc-nvp`), instead of this process's stdout. */
  static start(
    entry: string,
    args: string[],
    options: { execArgv?: string[]; timeoutMs?: number; env?: NodeJS.ProcessEnv; script?: string; stdout?: (line: string) => void } = {},
  ): Promise<ServerChild> {
    const script = options.script ?? entryPath(entry);
    const child = spawn(script, args, options.execArgv ?? [], options.env, options.stdout);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${entry} did not become ready within ${options.timeoutMs ?? 60_000} ms`));
      }, options.timeoutMs ?? 60_000);
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => (clearTimeout(timer), reject(exitError(script, code, signal)));
      child.once('exit', onExit);
      child.on('message', function onReady(m: { type?: string; port?: number; httpPort?: number }) {
        if (m.type !== 'ready') return;
        clearTimeout(timer);
        child.off('exit', onExit);
        child.off('message', onReady);
        resolve(new ServerChild(entry, child, m.port!, m.httpPort ?? 0));
      });
    });
  }

  private request<T>(type: string): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (!this.child.connected) {
        reject(new Error(`${this.name} is not running`));
        return;
      }
      this.waiting.set(id, { resolve, reject });
      this.child.send({ id, type }, (err) => {
        if (!err) return;
        this.waiting.delete(id);
        reject(err);
      });
    });
  }

  /** Zeroes the child's counters and CPU baselines: the start of a measured window. */
  reset(): Promise<void> {
    return this.request('reset').then(() => undefined);
  }

  stats(): Promise<EntryStats> {
    return this.request<{ stats: EntryStats }>('stats').then((m) => m.stats);
  }

  /** Graceful stop (lets --cpu-prof write its file), SIGKILL if it takes longer than `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.request('shutdown').catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Runs a one-shot child entry that sends a single result message and exits. */
export function runOnce<T>(entry: string, args: string[], timeoutMs: number): Promise<T> {
  const script = entryPath(entry);
  const child = spawn(script, args, []);
  return new Promise<T>((resolve, reject) => {
    let result: T | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('message', (m: T) => (result = m));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && result !== undefined) resolve(result);
      else reject(exitError(script, code, signal));
    });
  });
}

/** One real response per model, so the no-op server answers with exactly as many bytes. */
export async function captureResponses(server: ServerChild, models: BenchModel[], file: string): Promise<void> {
  const client = createModelClient(server.address);
  try {
    const out: Record<string, unknown> = {};
    for (const m of models) out[m] = await unary(client, 'Predict', predictRequest(m), { deadlineMs: 30_000 });
    fs.writeFileSync(file, JSON.stringify(out));
  } finally {
    client.close();
  }
}

/** A port free on 127.0.0.1 right now (for children that take --port N rather than reporting an ephemeral one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}
