/**
 * The calls a front door has not answered yet, so that a drain whose grace period runs out can answer
 * them itself with UNAVAILABLE. Left to grpc-js, forceShutdown() ends them with CANCELLED, which retry
 * policies and meshes do not retry; UNAVAILABLE tells the client to try another replica.
 *
 * Kept as an intrusive doubly linked list, not a Set of the calls' closures. Measured with `--trace-gc-nvp`
 * on `mlp` at c=16 with answers one event-loop turn after the request (as every inference is): with the Set,
 * 1.8 MB of requests were promoted into the old generation at every scavenge (the whole call, from grpc-js's
 * stream to the answer closure), 268 ms of scavenge pauses in 5 s; with the list 0.1 MB and 90 ms, as in a
 * server that tracks nothing (`npm run bench:gc` shows it). Why V8 kept them is not established; a Set's
 * hash table, reallocated under this add/remove churn, is the likely holder. That difference holds until the
 * process's first mark-compacts: after them, on long-lived connections, Node's HTTP/2 layer promotes
 * ~1.3-2 MB per scavenge in any server, and the two measured alike in throughput
 * (bench/results/gc-after-mark-compact-2026-12-03.md).
 */
import type { ServingError } from '../core/errors';

export type FailCall = (err: ServingError) => void;

interface Node {
  fail: FailCall | undefined;
  prev: Node | undefined;
  next: Node | undefined;
}

export class InflightCalls {
  private head: Node | undefined;
  private count = 0;

  /** Registers a call's way of failing; the returned function forgets it (call it once answered; twice is harmless). */
  track(fail: FailCall): () => void {
    const node: Node = { fail, prev: undefined, next: this.head };
    if (this.head) this.head.prev = node;
    this.head = node;
    this.count++;
    return () => this.unlink(node);
  }

  private unlink(node: Node): void {
    if (!node.fail) return;
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    node.fail = node.prev = node.next = undefined;
    this.count--;
  }

  get size(): number {
    return this.count;
  }

  /** Answers every tracked call with `err`; returns how many there were. */
  failAll(err: ServingError): number {
    const calls: FailCall[] = [];
    for (let n = this.head; n; n = n.next) calls.push(n.fail!);
    while (this.head) this.unlink(this.head);
    for (const fail of calls) fail(err);
    return calls.length;
  }
}
