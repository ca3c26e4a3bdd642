/**
 * Authentication: turns a call's credentials (the `authorization: Bearer ...` header or metadata, and the
 * client certificate the TLS handshake verified) into a Principal, or refuses with UNAUTHENTICATED.
 *
 * - A bearer token with two dots is a JWT: verified with jose against the policy's JWKS file or issuer public
 *   key, its issuer, audience, algorithms and expiry; the principal is its `sub` (or the configured claim).
 * - Any other bearer token is an API key: its sha256 is looked up among the policy's hashed keys. The keys are
 *   random 256-bit strings (`tensorgate keys new`), so a fast hash is the right one (no salt or stretching is
 *   needed against guessing), and a lookup by hash gives no timing hint about any stored key.
 * - With no token, a client certificate (mutual TLS, --tls-client-ca) authenticates when the policy has `mtls`.
 * A token wins over a certificate; an invalid token is refused even when a certificate came with it.
 *
 * Tokens never appear in a message, a log line or a metric.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { JWTVerifyGetKey } from 'jose' with { 'resolution-mode': 'import' };
import { ServingError } from '../core/errors';
import { matchesAny, principal, type GenerationLimits, type Principal } from './principal';
import { policyPath, type AccessPolicy } from './access-policy';
import type { PeerIdentity } from './peer-identity';

/** What a front door hands over from the wire. */
export interface CallCredentials {
  /** The `authorization` header or metadata value, as sent. */
  authorization?: string;
  /** The verified client certificate, when the connection is mutual TLS. */
  peer?: PeerIdentity;
}

export const unauthenticated = (message: string) => new ServingError('UNAUTHENTICATED', message);

/** Verified JWTs are remembered (by their hash) until they expire, at most this many. */
const VERIFIED_TOKENS = 4096;
const MAX_TOKEN_CHARS = 16 * 1024;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** jose is ESM-only; this package is CommonJS, so it is loaded with import() once, when a JWT setting needs it. */
type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
let josePromise: Promise<Jose> | undefined;
const loadJose = () => (josePromise ??= import('jose'));

export class Authenticator {
  private readonly keysByHash: Map<string, string>;
  private readonly verified = new LRUCache<string, Principal>({ max: VERIFIED_TOKENS, ttlAutopurge: false });

  private constructor(
    private readonly policy: AccessPolicy,
    private readonly jwtKey: { jose: Jose; key: KeyObject | JWTVerifyGetKey } | undefined,
  ) {
    this.keysByHash = new Map(policy.api_keys.map((k) => [k.sha256, k.name]));
  }

  /** Reads what the policy's JWT section names (JWKS or public key file); throws a message naming the file. */
  static async create(policy: AccessPolicy): Promise<Authenticator> {
    const j = policy.jwt;
    if (!j) return new Authenticator(policy, undefined);
    const jose = await loadJose();
    const file = policyPath(policy, (j.jwks_file ?? j.public_key_file)!);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`--auth-config ${policy.file}: cannot read jwt ${j.jwks_file ? 'jwks_file' : 'public_key_file'} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      const key = j.jwks_file ? jose.createLocalJWKSet(JSON.parse(text)) : createPublicKey(text);
      return new Authenticator(policy, { jose, key });
    } catch (err) {
      throw new Error(`--auth-config ${policy.file}: jwt ${j.jwks_file ? 'jwks_file' : 'public_key_file'} ${file} is not a ${j.jwks_file ? 'JWK set (JSON with "keys")' : 'PEM public key'}: ${(err as Error).message}`);
    }
  }

  /** The call's principal, or an UNAUTHENTICATED ServingError that says what to send instead. */
  async authenticate(credentials: CallCredentials): Promise<Principal> {
    const header = credentials.authorization;
    let who: Principal;
    if (header !== undefined && header !== '') who = await this.fromToken(bearerToken(header));
    else if (credentials.peer && this.policy.mtls) who = this.fromCertificate(credentials.peer);
    else throw unauthenticated(`this server requires credentials: send 'authorization: Bearer <API key or JWT>'${this.policy.mtls ? ' or connect with a client certificate' : ''}`);
    who.generationLimits = this.generationLimitsOf(who);
    return who;
  }

  private async fromToken(token: string): Promise<Principal> {
    const digest = sha256(token);
    const key = this.keysByHash.get(digest);
    if (key !== undefined) return principal('key', key);
    if (token.split('.').length !== 3) throw unauthenticated('the bearer token is not a known API key');
    if (!this.jwtKey) throw unauthenticated('the bearer token is not a known API key (this server accepts no JWTs)');
    const cached = this.verified.get(digest);
    if (cached) return { ...cached };
    const j = this.policy.jwt!;
    const { jose, key: verifyKey } = this.jwtKey;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jose.jwtVerify(token, verifyKey as KeyObject, {
        algorithms: j.algorithms,
        clockTolerance: j.clock_tolerance_secs,
        ...(j.issuer ? { issuer: j.issuer } : {}),
        ...(j.audience ? { audience: j.audience } : {}),
      }));
    } catch (err) {
      throw unauthenticated(`the bearer JWT is not valid: ${jwtReason(err)}`);
    }
    const name = payload[j.principal_claim];
    if (typeof name !== 'string' || name === '') throw unauthenticated(`the bearer JWT has no string '${j.principal_claim}' claim to name its principal`);
    const who = principal('jwt', name, { claims: payload });
    // Remembered until it expires (never past it: a cached token must not outlive its exp).
    const exp = typeof payload.exp === 'number' ? payload.exp * 1000 - Date.now() : 300_000;
    if (exp > 0) this.verified.set(digest, who, { ttl: Math.min(exp, 300_000) });
    return { ...who };
  }

  private fromCertificate(peer: PeerIdentity): Principal {
    const name = this.policy.mtls!.principal === 'san' ? (peer.sans[0] ?? '') : peer.subject;
    if (!name) throw unauthenticated(`the client certificate has no ${this.policy.mtls!.principal === 'san' ? 'subject alternative name' : 'subject CN'} to name its principal`);
    return principal('cert', name, { certificate: peer });
  }

  /** The tightest of every matching generation limit. */
  private generationLimitsOf(who: Principal): GenerationLimits | undefined {
    let limits: GenerationLimits | undefined;
    for (const rule of this.policy.generation_limits) {
      if (!matchesAny(who, rule.principals)) continue;
      limits ??= {};
      if (rule.max_prompt_bytes !== undefined) limits.maxPromptBytes = Math.min(limits.maxPromptBytes ?? Infinity, rule.max_prompt_bytes);
      if (rule.max_tokens !== undefined) limits.maxTokens = Math.min(limits.maxTokens ?? Infinity, rule.max_tokens);
    }
    return limits;
  }
}

/** The token of an `authorization: Bearer <token>` value. */
function bearerToken(header: string): string {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match) throw unauthenticated(`the authorization value must be 'Bearer <API key or JWT>' (one token after the word Bearer)`);
  if (match[1]!.length > MAX_TOKEN_CHARS) throw unauthenticated(`the bearer token is longer than ${MAX_TOKEN_CHARS} characters`);
  return match[1]!;
}

/** jose's reason, without anything from the token itself. */
function jwtReason(err: unknown): string {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'it has expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'its signature does not verify';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key in the JWK set matches it';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'its algorithm is not allowed';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `its '${(err as { claim?: string }).claim ?? 'claims'}' claim check failed (${(err as { reason?: string }).reason ?? 'invalid'})`;
    default:
      return 'it is malformed';
  }
}
