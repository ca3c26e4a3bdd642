/**
 * The calls a front door has not answered yet, so that a drain whose grace period runs out can answer
 * them itself with UNAVAILABLE. Left to grpc-js, forceShutdown() ends them with CANCELLED, which retry
 * policies and meshes do not retry; UNAVAILABLE tells the client to try another replica.
 */
import type { ServingError } from '../core/errors';

export type FailCall = (err: ServingError) => void;

export class InflightCalls {
  private readonly calls = new Set<FailCall>();

  /** Registers a call's way of failing; the returned function forgets it (call it once answered). */
  track(fail: FailCall): () => void {
    this.calls.add(fail);
    return () => this.calls.delete(fail);
  }

  get size(): number {
    return this.calls.size;
  }

  /** Answers every tracked call with `err`; returns how many there were. */
  failAll(err: ServingError): number {
    const calls = [...this.calls];
    this.calls.clear();
    for (const fail of calls) fail(err);
    return calls.length;
  }
}
