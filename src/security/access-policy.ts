/**
 * The access policy (--auth-config FILE, YAML): who may call, what each may do on which model, and how fast.
 * One validated schema; unknown keys are refused by name, and file paths inside it are relative to it.
 *
 * Without a policy every call is allowed (the default on loopback). With one, every call must authenticate
 * except the endpoint groups listed under `open`.
 *
 * @example
 * ```yaml
 * api_keys:                          # tensorgate keys new NAME prints a key and its line here
 *   - { name: alice, sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" }
 * jwt:                               # tokens with two dots are verified as JWTs (jose)
 *   jwks_file: jwks.json             # or public_key_file: issuer.pem
 *   issuer: https://login.example.com/
 *   audience: tensorgate
 * mtls: { principal: subject_cn }    # a verified client certificate authenticates too (needs --tls-client-ca)
 * open: [health, console]            # health | metrics | reflection | console: reachable without credentials
 * permissions:                       # absent: every authenticated principal may do everything
 *   - { principals: ['*'], models: ['*'], actions: [metadata] }
 *   - { principals: [alice, 'claim:role=ml'], models: [mlp, sentiment], actions: [infer] }
 *   - { principals: ['key:ops'], models: ['*'], actions: ['*'] }
 * rate_limits:                       # token buckets; every rule that matches a call applies
 *   - { principals: ['*'], requests_per_second: 50, burst: 100 }   # each principal its own bucket
 *   - { models: [convnet], requests_per_second: 200, burst: 200 }  # each model its own bucket, all callers
 * generation_limits:
 *   - { principals: ['*'], max_prompt_bytes: 8192, max_tokens: 256 }
 * ```
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { describeIssues } from '../repository/model-config';

/** What a call does; each RPC and route is one of these (src/security/call-actions.ts). */
export const ACTIONS = ['infer', 'generate', 'metadata', 'control', 'health'] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * Endpoint groups that can be left reachable without credentials. `console` is the web console's files (its
 * page and modules, no data: the data it shows comes from calls that carry the user's token); open by default,
 * since a browser cannot send a token when it opens a page. A policy that lists `open` without it keeps the
 * page behind credentials too, which turns the console off for browsers.
 */
export const OPEN_GROUPS = ['health', 'metrics', 'reflection', 'console'] as const;
export type OpenGroup = (typeof OPEN_GROUPS)[number];

const selectors = z.array(z.string().min(1).max(256)).min(1);

const apiKey = z.strictObject({
  /** How the key's principal is named (key:NAME) in permissions, logs and metrics. */
  name: z.string().regex(/^[\w.@-]{1,64}$/, 'a name of 1-64 letters, digits, _ . @ -'),
  /** sha256 of the key, 64 hex digits: the key itself is never stored. */
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, '64 hex digits (the sha256 of the key)').transform((h) => h.toLowerCase()),
});

const jwt = z
  .strictObject({
    jwks_file: z.string().min(1).optional(),
    public_key_file: z.string().min(1).optional(),
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
    /** Accepted signature algorithms; default: the asymmetric ones (never 'none', never HS* with a public key). */
    algorithms: z.array(z.string().min(1)).min(1).default(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']),
    /** The claim that names the principal (jwt:VALUE). */
    principal_claim: z.string().min(1).default('sub'),
    clock_tolerance_secs: z.number().int().min(0).max(3600).default(30),
  })
  .refine((j) => (j.jwks_file === undefined) !== (j.public_key_file === undefined), { message: 'give exactly one of jwks_file and public_key_file' });

const permission = z.strictObject({
  principals: selectors,
  /** Model names, or '*' for every model. */
  models: selectors,
  actions: z.array(z.union([z.enum(ACTIONS), z.literal('*')])).min(1),
});

const rateLimit = z
  .strictObject({
    /** Each matching principal gets its own bucket. */
    principals: selectors.optional(),
    /** Each matching model gets its own bucket (shared by every caller, or per principal when principals is set too). */
    models: selectors.optional(),
    requests_per_second: z.number().positive().max(1e6),
    /** Largest burst; default one second's worth. */
    burst: z.number().int().positive().max(1e7).optional(),
  })
  .refine((r) => r.principals !== undefined || r.models !== undefined, { message: 'a rate limit names principals, models, or both' });

const generationLimit = z.strictObject({
  principals: selectors,
  max_prompt_bytes: z.number().int().positive().optional(),
  max_tokens: z.number().int().positive().optional(),
});

export const accessPolicySchema = z.strictObject({
  api_keys: z.array(apiKey).default([]),
  jwt: jwt.optional(),
  mtls: z.strictObject({ principal: z.enum(['subject_cn', 'san']).default('subject_cn') }).optional(),
  open: z.array(z.enum(OPEN_GROUPS)).default(['health', 'console']),
  permissions: z.array(permission).optional(),
  rate_limits: z.array(rateLimit).default([]),
  generation_limits: z.array(generationLimit).default([]),
});

export type AccessPolicy = z.infer<typeof accessPolicySchema> & {
  /** Where the policy was read from; its relative paths are resolved against it. */
  file: string;
};
export type RateLimitRule = AccessPolicy['rate_limits'][number];

/** Reads and validates a policy file; throws one message naming the file and every problem. */
export function loadAccessPolicy(file: string): AccessPolicy {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read --auth-config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    throw new Error(`--auth-config ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const parsed = accessPolicySchema.safeParse(raw);
  if (!parsed.success) throw new Error(`--auth-config ${file}: ${describeIssues(parsed.error)}`);
  const names = parsed.data.api_keys.map((k) => k.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new Error(`--auth-config ${file}: api_keys: the name '${twice}' is used twice`);
  const policy = { ...parsed.data, file: path.resolve(file) };
  if (policy.api_keys.length === 0 && !policy.jwt && !policy.mtls) {
    throw new Error(`--auth-config ${file}: no way to authenticate: give api_keys, jwt or mtls`);
  }
  return policy;
}

/** A path named in the policy, relative to the policy file. */
export const policyPath = (policy: AccessPolicy, p: string) => path.resolve(path.dirname(policy.file), p);

/** What a loaded policy does, for the startup log: fields and one line. */
export function describePolicy(p: AccessPolicy): { fields: Record<string, unknown>; message: string } {
  const ways = [p.api_keys.length ? `${p.api_keys.length} API key${p.api_keys.length > 1 ? 's' : ''}` : '', p.jwt ? 'JWT' : '', p.mtls ? 'client certificates' : ''].filter(Boolean);
  return {
    fields: { policy: p.file, apiKeys: p.api_keys.length, jwt: !!p.jwt, mtls: !!p.mtls, open: p.open, permissions: p.permissions?.length ?? 'all', rateLimits: p.rate_limits.length },
    message:
      `access policy ${p.file}: callers authenticate with ${ways.join(', ')}; ` +
      `${p.permissions ? `${p.permissions.length} permission rules` : 'every authenticated caller may do everything'}; ` +
      `${p.rate_limits.length} rate limits; open without credentials: ${p.open.join(', ') || 'nothing'}`,
  };
}
