/**
 * The access guard: the policy applied to a call. Authentication runs at the door, before a request's body
 * is read (the gRPC interceptor, the HTTP onRequest check); permission and rate limits run in the request
 * envelope, once the call names its model, for every front door alike.
 *
 * - UNAUTHENTICATED (401): no credentials, or credentials that do not verify;
 * - PERMISSION_DENIED (403): a known principal without permission for this action on this model;
 * - RESOURCE_EXHAUSTED (429) with a retry hint: over a rate limit.
 * A call that names no model (list models, server metadata, repository index) is allowed to a principal that
 * has its action on at least one model; health calls only need authentication (or `open: [health]`).
 */
import { clip, permissionDenied, RetryLaterError } from '../core/errors';
import { loadAccessPolicy, type AccessPolicy, type Action, type OpenGroup } from './access-policy';
import { Authenticator, unauthenticated, type CallCredentials } from './authenticator';
import { actionOf } from './call-actions';
import { matchesAny, type Principal } from './principal';
import { RateLimiter } from './rate-limiter';

export class AccessGuard {
  readonly open: ReadonlySet<OpenGroup>;
  private readonly limiter: RateLimiter;

  private constructor(
    readonly policy: AccessPolicy,
    private readonly authenticator: Authenticator,
    previous: AccessGuard | undefined,
  ) {
    this.open = new Set(policy.open);
    // A reload that leaves the rate limits as they were keeps their buckets: no fresh burst for anyone.
    const same = previous && JSON.stringify(previous.policy.rate_limits) === JSON.stringify(policy.rate_limits);
    this.limiter = same ? previous.limiter : new RateLimiter(policy.rate_limits);
  }

  /** Reads the policy file and what it names; throws one message a person can act on. */
  static async fromFile(file: string, previous?: AccessGuard): Promise<AccessGuard> {
    const policy = loadAccessPolicy(file);
    return new AccessGuard(policy, await Authenticator.create(policy), previous);
  }

  authenticate(credentials: CallCredentials): Promise<Principal> {
    return this.authenticator.authenticate(credentials);
  }

  /**
   * Throws the refusal for a call of `method` on `model` ('' for none) by `who` (undefined: it came through an
   * open group unauthenticated); returns when it may run.
   */
  admit(who: Principal | undefined, method: string, model: string): void {
    const action = actionOf(method);
    if (!who) {
      if (action === 'health' && this.open.has('health')) return;
      throw unauthenticated(`this server requires credentials for ${method}: send 'authorization: Bearer <API key or JWT>'`);
    }
    if (action !== 'health' && !this.permits(who, action, model)) {
      throw permissionDenied(model ? `${who.label} has no '${action}' permission on model ${JSON.stringify(clip(model, 64))}` : `${who.label} has no '${action}' permission on any model of this server`);
    }
    const waitMs = this.limiter.take(who, model);
    if (waitMs > 0) {
      throw new RetryLaterError('RESOURCE_EXHAUSTED', `rate limit reached for ${who.label}${model ? ` on model ${JSON.stringify(clip(model, 64))}` : ''}; retry in ${waitMs} ms`, waitMs);
    }
  }

  /**
   * Which models a listing (ListModels, the repository index, all-model statistics, GET /v1/models) shows
   * `who`: those it may read metadata of. Undefined: every model (no permissions in the policy).
   */
  visibleTo(who: Principal | undefined): ((model: string) => boolean) | undefined {
    if (!this.policy.permissions) return undefined;
    return (model) => who !== undefined && this.permits(who, 'metadata', model);
  }

  private permits(who: Principal, action: Action, model: string): boolean {
    const rules = this.policy.permissions;
    if (!rules) return true;
    return rules.some(
      (r) => (r.actions.includes('*') || r.actions.includes(action)) && (model === '' || r.models.includes('*') || r.models.includes(model)) && matchesAny(who, r.principals),
    );
  }
}

