/**
 * The child side of the benchmark's IPC protocol, shared by the tensorgate and the no-op server entries:
 * `{type:'ready', port}` once listening, then request/reply messages carrying an `id`:
 * `reset` (start a measured window), `stats` (counters since the last reset), `shutdown`.
 *
 * CPU is read per thread from /proc because process.cpuUsage() adds up every thread (inference workers,
 * ONNX Runtime pools, libuv); the main thread alone is what the gRPC front door, validation and
 * scheduling cost, and the part that cannot scale past one core.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

// Read once at startup: /proc reports CPU in clock ticks (almost always 100 per second on Linux).
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time of the main thread in µs (its tid equals the pid), from utime + stime. */
export function mainThreadCpuUs(): number {
  const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15 overall.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

export function processCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Counters an entry keeps; `requests` and `rows` are what the server itself saw. */
export interface EntryCounters {
  requests: number;
  rows: number;
  batches: number;
  /** Sum of inference time reported by the workers (0 where the server does not report it). */
  computeMs: number;
}

/** Result-cache lookups during the window (tensorgate with its cache on). */
export interface CacheWindow {
  hits: number;
  misses: number;
  coalesced: number;
}

/** What the OTLP sink received during the window. */
export interface SinkWindow {
  /** POST /v1/traces requests. */
  requests: number;
  /** Request body bytes, as sent (compressed if the exporter compressed). */
  bytes: number;
  /** Spans in those requests (counted by walking the protobuf). */
  spans: number;
}

/** The OpenTelemetry SDK's own troubles during the window (tensorgate exporting spans), from its diag warnings. */
export interface TracingWindow {
  /** Spans the BatchSpanProcessor dropped because its queue was full (reported when the next span fits). */
  droppedSpans: number;
  /** Other SDK warnings and errors (failed exports, timeouts). */
  problems: number;
}

/** Entry-specific figures for the window, beside the common counters. */
export interface EntryExtras {
  cache?: CacheWindow;
  sink?: SinkWindow;
  tracing?: TracingWindow;
}

export interface EntryStats extends EntryCounters, EntryExtras {
  /** Inference worker threads (0 for the no-op server). */
  workers: number;
  windowMs: number;
  mainCpuUs: number;
  processCpuUs: number;
}

export interface EntryIpc {
  counters: EntryCounters;
  /** `httpPort`: the HTTP port, for entries that serve one (REST load). */
  ready(port: number, httpPort?: number): void;
}

/** An entry's own window: `reset` at the window's start, `read` (figures since then) at its end. */
export interface ExtraStats {
  reset(): void;
  read(): EntryExtras;
}

/** Wires the protocol to `process` (which must have an IPC channel) and returns the counters to bump. */
export function serveIpc(shutdown: () => Promise<void>, workers = 0, extra?: ExtraStats): EntryIpc {
  if (!process.send) throw new Error('bench entries must be started by bench/run.js (fork with an IPC channel)');
  const send = process.send.bind(process);
  const counters: EntryCounters = { requests: 0, rows: 0, batches: 0, computeMs: 0 };
  let base = { at: performance.now(), main: mainThreadCpuUs(), proc: processCpuUs() };
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    // process.exit (not a kill) so that --cpu-prof gets to write its profile.
    shutdown().finally(() => process.exit(0));
  };
  process.on('message', (m: { id: number; type: string }) => {
    if (m.type === 'reset') {
      counters.requests = counters.rows = counters.batches = counters.computeMs = 0;
      extra?.reset();
      base = { at: performance.now(), main: mainThreadCpuUs(), proc: processCpuUs() };
      send({ id: m.id, type: 'ok' });
    } else if (m.type === 'stats') {
      const stats: EntryStats = {
        ...counters,
        ...extra?.read(),
        workers,
        windowMs: performance.now() - base.at,
        mainCpuUs: mainThreadCpuUs() - base.main,
        processCpuUs: processCpuUs() - base.proc,
      };
      send({ id: m.id, type: 'stats', stats });
    } else if (m.type === 'shutdown') {
      send({ id: m.id, type: 'ok' });
      stop();
    }
  });
  // The parent went away (crash, Ctrl-C): never outlive it.
  process.on('disconnect', stop);
  return { counters, ready: (port, httpPort) => send({ type: 'ready', port, ...(httpPort ? { httpPort } : {}) }) };
}
