/**
 * Structured JSON logs (pino). One logger for the process; modules take it as a parameter so tests can
 * pass a silent one.
 */
import pino from 'pino';

export type Logger = pino.Logger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(level: LogLevel = 'info', destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { service: 'tensorgate' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
