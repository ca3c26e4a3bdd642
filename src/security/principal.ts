/**
 * Who a call is from, once authenticated: an API key's name, a JWT's subject (and its claims), or a client
 * certificate's identity. Permissions, rate limits and generation limits name principals with selectors:
 *
 *   '*'                 any authenticated principal
 *   'alice'             a principal named alice, however it authenticated
 *   'key:alice'         the API key named alice
 *   'jwt:1234'          a JWT whose subject (or configured principal claim) is 1234
 *   'cert:client-a'     a client certificate whose subject CN is client-a, or with that SAN value
 *                       ('cert:spiffe://cluster/ns/a' matches the SAN URI:spiffe://cluster/ns/a)
 *   'claim:role=ml'     a JWT whose claim `role` equals ml, or holds it in an array or a space-separated string
 *                       (OAuth's `scope`)
 */
import type { PeerIdentity } from './peer-identity';

export type PrincipalKind = 'key' | 'jwt' | 'cert';

/** What a principal may ask of Generate, whatever the server's own limits allow. */
export interface GenerationLimits {
  /** Most UTF-8 bytes of prompt (or of all chat messages' content together). */
  maxPromptBytes?: number;
  /** Most new tokens one request may ask for (max_tokens / max_new_tokens). */
  maxTokens?: number;
}

export interface Principal {
  kind: PrincipalKind;
  name: string;
  /** `${kind}:${name}`: how logs, metrics and messages name it (never a secret). */
  label: string;
  /** A JWT's verified claims. */
  claims?: Readonly<Record<string, unknown>>;
  /** A client certificate's identity. */
  certificate?: PeerIdentity;
  /** Resolved from the policy when the principal is authenticated. */
  generationLimits?: GenerationLimits;
}

export function principal(kind: PrincipalKind, name: string, extra: Partial<Pick<Principal, 'claims' | 'certificate'>> = {}): Principal {
  return { kind, name, label: `${kind}:${name}`, ...extra };
}

/** The SAN's value without its type ('URI:spiffe://x' -> 'spiffe://x'). */
const sanValue = (san: string) => san.slice(san.indexOf(':') + 1);

function claimHolds(claims: Readonly<Record<string, unknown>> | undefined, name: string, value: string): boolean {
  const held = claims?.[name];
  if (typeof held === 'string') return held === value || held.split(' ').includes(value);
  if (typeof held === 'number' || typeof held === 'boolean') return String(held) === value;
  return Array.isArray(held) && held.some((h) => String(h) === value);
}

export function matchesSelector(p: Principal, selector: string): boolean {
  if (selector === '*') return true;
  const colon = selector.indexOf(':');
  if (colon < 0) return p.name === selector;
  const kind = selector.slice(0, colon);
  const rest = selector.slice(colon + 1);
  switch (kind) {
    case 'key':
    case 'jwt':
      return p.kind === kind && p.name === rest;
    case 'cert':
      return p.kind === 'cert' && (p.name === rest || (p.certificate?.sans ?? []).some((s) => s === rest || sanValue(s) === rest));
    case 'claim': {
      const eq = rest.indexOf('=');
      return p.kind === 'jwt' && eq > 0 && claimHolds(p.claims, rest.slice(0, eq), rest.slice(eq + 1));
    }
    default:
      // Not a kind we know ('spiffe://...' is not a selector kind): a plain name with a colon in it.
      return p.name === selector;
  }
}

export const matchesAny = (p: Principal, selectors: readonly string[]) => selectors.some((s) => matchesSelector(p, s));
