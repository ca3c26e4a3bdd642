/**
 * An inference worker: owns ONNX Runtime sessions and runs them. It exists because `session.run` in the
 * Node binding blocks the thread it is called on; on the main thread one inference would stall every
 * other request, health check and deadline. Each worker handles one message at a time.
 */
import { parentPort } from 'node:worker_threads';
import type { SessionSettings, WarmupRun, WorkerRequest, WorkerResponse, WorkerStats } from './messages';
import { NativeSession } from './ort-session';
import { fromWire, toWire } from './wire-tensors';
import { DecodeLoop } from '../generation/decode-loop';

if (!parentPort) throw new Error('runtime/worker must be started as a worker thread');
const port = parentPort;

const sessions = new Map<string, NativeSession>();
/** Second sessions of some keys with more intra-op threads, for runs that have the machine to themselves ('solo'). */
const soloSessions = new Map<string, NativeSession>();
/** The sequences this worker generates; their KV caches live here and never cross threads. */
/** Set by the pool ('solo-hint'): no other worker has work, so decode steps may use the solo sessions. */
let alone = false;
/** The session a run or decode step of `key` uses: the solo one when asked for and there is one, else the ordinary one. */
function sessionFor(key: string, solo: boolean): { session: NativeSession; solo: boolean } | undefined {
  const soloSession = solo ? soloSessions.get(key) : undefined;
  if (soloSession) return { session: soloSession, solo: true };
  const session = sessions.get(key);
  return session && { session, solo: false };
}
const decoding = new DecodeLoop(
  (key) => sessionFor(key, alone),
  (tokens) => reply({ type: 'gen-tokens', id: 0, ...tokens }),
  (key) => {
    if (exitOnRun.has(key)) process.exit(70); // as for runs: the thread dies mid-generation
    stats.runs[key] = (stats.runs[key] ?? 0) + 1;
  },
);
const stats: WorkerStats = { runs: {}, skippedExpired: 0, warmupRuns: {} };
/** Session keys whose next run ends this thread instead (see 'exit-on-run'). */
const exitOnRun = new Set<string>();

function reply(message: WorkerResponse, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

/** A new session that has made its warm-up runs; throws (and keeps nothing) when it cannot load or run them. */
function warmedSession(path: string, settings: SessionSettings, warmup: WarmupRun[]): NativeSession {
  const session = new NativeSession(path, settings);
  // Warm-up runs pay ONNX Runtime's first-run costs (allocations, kernel selection) before any request does;
  // a session that cannot run them is not kept.
  for (const w of warmup) {
    const given = new Set(w.inputs.map((t) => t.name));
    const unknown = w.inputs.filter((t) => !session.inputs.some((s) => s.name === t.name)).map((t) => t.name);
    const missing = session.inputs.filter((s) => !given.has(s.name)).map((s) => s.name);
    if (unknown.length > 0 || missing.length > 0) {
      session.dispose();
      const problems = [unknown.length ? `unknown input ${unknown.map((n) => `'${n}'`).join(', ')}` : '', missing.length ? `missing input ${missing.map((n) => `'${n}'`).join(', ')}` : ''];
      throw new Error(`warm-up '${w.name}' does not fit the model: ${problems.filter(Boolean).join('; ')} (the model's inputs: ${session.inputs.map((s) => s.name).join(', ')})`);
    }
    for (let i = 0; i < w.count; i++) {
      try {
        session.run(w.inputs.map(fromWire), []);
      } catch (err) {
        session.dispose();
        throw new Error(`warm-up '${w.name}' failed (run ${i + 1} of ${w.count}): ${errorMessage(err)}`);
      }
    }
  }
  return session;
}

function load(key: string, path: string, settings: SessionSettings, warmup: WarmupRun[] = []): WorkerResponse & { type: 'loaded' } {
  const session = warmedSession(path, settings, warmup);
  if (warmup.length > 0) stats.warmupRuns[key] = warmup.reduce((n, w) => n + w.count, 0);
  sessions.get(key)?.dispose();
  dropSolo(key); // made for what was loaded before
  decoding.forget(key);
  sessions.set(key, session);
  return { type: 'loaded', id: 0, inputs: session.inputs, outputs: session.outputs };
}

function dropSolo(key: string): void {
  soloSessions.get(key)?.dispose();
  soloSessions.delete(key);
}

function run(message: WorkerRequest & { type: 'run' }): void {
  const session = sessionFor(message.key, message.solo === true)?.session;
  if (!session) {
    reply({ type: 'error', id: message.id, kind: 'protocol', message: `session '${message.key}' is not loaded in this worker` });
    return;
  }
  if (message.deadline !== undefined && Date.now() >= message.deadline) {
    stats.skippedExpired++;
    reply({ type: 'error', id: message.id, kind: 'expired', message: 'deadline passed before execution started' });
    return;
  }
  if (exitOnRun.has(message.key)) process.exit(70); // ends this worker thread only, mid-run as the pool sees it
  stats.runs[message.key] = (stats.runs[message.key] ?? 0) + 1;
  const result = session.run(message.inputs.map(fromWire), message.outputs);
  const transfer: ArrayBuffer[] = [];
  // ONNX Runtime gives every output a fresh buffer: it moves back without a copy.
  const outputs = result.outputs.map((t) => toWire(t, transfer, true));
  reply({ type: 'result', id: message.id, outputs, computeMs: result.computeMs }, transfer);
}

function handle(message: WorkerRequest): void {
  switch (message.type) {
    case 'load':
      try {
        const loaded = load(message.key, message.path, message.settings, message.warmup);
        reply({ ...loaded, id: message.id });
      } catch (err) {
        reply({ type: 'error', id: message.id, kind: 'load', message: errorMessage(err) });
      }
      return;
    case 'load-solo':
      try {
        if (!sessions.has(message.key)) throw new Error(`session '${message.key}' is not loaded in this worker`);
        const session = warmedSession(message.path, message.settings, message.warmup);
        dropSolo(message.key);
        soloSessions.set(message.key, session);
        reply({ type: 'loaded', id: message.id, inputs: session.inputs, outputs: session.outputs });
      } catch (err) {
        reply({ type: 'error', id: message.id, kind: 'load', message: errorMessage(err) });
      }
      return;
    case 'unload': {
      const session = sessions.get(message.key);
      sessions.delete(message.key);
      dropSolo(message.key);
      decoding.forget(message.key);
      session?.dispose();
      reply({ type: 'unloaded', id: message.id });
      return;
    }
    case 'run':
      try {
        run(message);
      } catch (err) {
        reply({ type: 'error', id: message.id, kind: 'run', message: errorMessage(err) });
      }
      return;
    case 'unload-solo':
      dropSolo(message.key);
      return;
    case 'solo-hint':
      alone = message.alone;
      return;
    case 'gen-join':
      decoding.join(message);
      return;
    case 'gen-drop':
      decoding.drop(message);
      return;
    case 'gen-halt':
      decoding.halt();
      reply({ type: 'halted', id: message.id });
      return;
    case 'exit-on-run':
      exitOnRun.add(message.key);
      reply({ type: 'armed', id: message.id });
      return;
    case 'stats':
      reply({ type: 'stats', id: message.id, stats: { runs: { ...stats.runs }, skippedExpired: stats.skippedExpired, warmupRuns: { ...stats.warmupRuns } } });
      return;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Every message is handled synchronously, so strictly one after another: ordering keeps load -> run ->
// unload sequences on one worker consistent, and a run never waits behind a deferred callback.
port.on('message', handle);
