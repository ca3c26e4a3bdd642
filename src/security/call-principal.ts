/**
 * Hands the principal found at the door (the gRPC interceptor, the HTTP onRequest check) to the request
 * envelope, which runs later for the same call: keyed by the call's metadata object (gRPC: the interceptor
 * passes the very object the handler receives) or its headers object (HTTP: one per request). A WeakMap, so
 * nothing outlives its call, and nothing a client sends can set it.
 */
import type { Principal } from './principal';

const principals = new WeakMap<object, Principal>();

export function attachPrincipal(carrier: object, who: Principal): void {
  principals.set(carrier, who);
}

export function principalOf(carrier: object): Principal | undefined {
  return principals.get(carrier);
}
