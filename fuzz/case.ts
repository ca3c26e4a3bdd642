/**
 * What the fuzzer sends and what it saw, as plain JSON-able data: a Case is one input (generated from a seed,
 * or read back from the corpus) and an Outcome is how the server (or an in-process parser) answered it.
 * Bytes travel as base64 so a case can be written to fuzz/corpus/ and replayed exactly.
 */

/** One input to one target. */
export type Case =
  | { kind: 'grpc-unary'; path: string; body: string; deadlineMs?: number }
  | { kind: 'grpc-server-stream'; path: string; body: string; deadlineMs?: number }
  | { kind: 'grpc-bidi'; path: string; bodies: string[]; deadlineMs?: number }
  | { kind: 'http'; method: string; path: string; headers: Record<string, string>; body: string }
  | { kind: 'config'; file: 'config.yaml' | 'config.pbtxt'; text: string };

export interface Outcome {
  /** gRPC status name, 'HTTP <status>', or for parsers 'ok' / the error's constructor name. */
  code: string;
  /** The status details, error body's message or thrown message (for the outcome class and the report). */
  message: string;
  /** What broke an invariant; empty when none did. */
  violations: string[];
  /** The id of the known finding (fuzz/known-findings.ts) this outcome is, allowed rather than a violation. */
  known?: string;
}

/** A case with where it came from, as the corpus stores it. */
export interface CorpusEntry {
  target: string;
  /** The input seed that generated it (replay: --replay target:seed). */
  seed: number;
  /** The outcome class it was kept for. */
  outcome: string;
  case: Case;
}

export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
export const unb64 = (text: string): Buffer => Buffer.from(text, 'base64');

/**
 * A message with the parts that vary from input to input (quoted client values, numbers, positions) replaced
 * by placeholders, so that "unknown input 'x1'" and "unknown input 'zz'" are one outcome class.
 */
export function normalise(message: string): string {
  return message
    .replace(/'[^']*'(?:\.\.\.'?)?(?: \(\d+ characters\))?/g, "'S'")
    .replace(/"(?:[^"\\]|\\.)*"/g, '"S"')
    .replace(/\(\d+ characters in all\)/g, '')
    .replace(/-?\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, 'N')
    .replace(/\[[N, .]*\]/g, '[N]')
    .replace(/\s+/g, ' ')
    .slice(0, 90);
}
