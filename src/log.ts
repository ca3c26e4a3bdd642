/**
 * Structured JSON logs (pino). One logger for the process; modules take it as a parameter so tests can
 * pass a silent one.
 */
import { isSpanContextValid, trace } from '@opentelemetry/api';
import pino from 'pino';
import pretty from 'pino-pretty';
import type { RequestRecord } from './api/request-record';
import { clip, SERVER_ERROR_CODES } from './core/errors';

export type Logger = pino.Logger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * Where log lines go: JSON on stdout for machines (collectors, `kubectl logs`); readable coloured lines
 * (pino-pretty, in-process and synchronous, so nothing is lost on exit) when a person watches a terminal.
 * `auto` picks by whether stdout is a TTY.
 */
export function logDestination(
  format: LogFormat,
  isTTY = process.stdout.isTTY === true,
  output?: NodeJS.WritableStream,
): pino.DestinationStream | undefined {
  if (format === 'json' || (format === 'auto' && !isTTY)) return undefined;
  return pretty({ colorize: isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service', sync: true, ...(output ? { destination: output } : {}) });
}

export function createLogger(level: LogLevel = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tensorgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Every line written while a request's span is active carries its trace id.
      mixin() {
        const span = trace.getActiveSpan();
        if (!span || !isSpanContextValid(span.spanContext())) return {};
        const { traceId, spanId } = span.spanContext();
        return { trace_id: traceId, span_id: spanId };
      },
    },
    destination,
  );
}


/**
 * The access log line of one request. No tensor data and no metadata values: only what identifies and
 * measures the request.
 */
export function logAccess(log: Logger, r: RequestRecord): void {
  // Client mistakes are routine traffic; server-side failures are worth a warning.
  const failed = SERVER_ERROR_CODES.has(r.code);
  // Below the logger's level the line is not built at all: it was ~0.2 KB of garbage per request.
  if (!log.isLevelEnabled(failed ? 'warn' : 'info')) return;
  const line = {
    access: true,
    protocol: r.protocol,
    method: r.method,
    // Names and ids come from clients: bounded, so a 1 MiB model name cannot make a 1 MiB log line.
    model: clip(r.model),
    version: clip(r.version),
    code: r.code,
    ms: Math.round(r.seconds * 1e6) / 1e3,
    request_id: r.requestId === undefined ? undefined : clip(r.requestId),
    ...(r.principal ? { principal: clip(r.principal) } : {}),
    ...(r.traceId ? { trace_id: r.traceId } : {}),
    ...(r.cached !== undefined ? { cached: r.cached } : {}),
    ...(r.batchRows !== undefined ? { batch_rows: r.batchRows, batch_requests: r.batchRequests } : {}),
    ...(r.completionTokens !== undefined ? { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, finish_reason: r.finishReason } : {}),
    ...(r.details ? { error: r.details } : {}),
  };
  if (failed) log.warn(line, 'request failed');
  else log.info(line, 'request');
}
