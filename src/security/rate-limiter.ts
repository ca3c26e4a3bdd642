/**
 * Rate limits: token buckets per principal, per model, or per principal and model, as the policy's
 * `rate_limits` rules say. A call takes one token from every bucket whose rule matches it, or from none: a
 * refusal never spends another bucket's token. A refused call learns how long until it would be admitted.
 *
 * Memory is bounded: buckets live in an LRU of MAX_BUCKETS (JWT subjects and model names are open-ended); an
 * evicted bucket comes back full, which only ever errs toward admitting.
 */
import { LRUCache } from 'lru-cache';
import type { RateLimitRule } from './access-policy';
import { matchesAny, type Principal } from './principal';

const MAX_BUCKETS = 10_000;

interface Bucket {
  tokens: number;
  /** performance.now() when tokens was last brought up to date. */
  at: number;
}

export class RateLimiter {
  private readonly buckets = new LRUCache<string, Bucket>({ max: MAX_BUCKETS });

  constructor(
    private readonly rules: readonly RateLimitRule[],
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.rules.length > 0;
  }

  /** 0 when admitted (a token taken from each matching bucket); otherwise the ms until it would be. */
  take(who: Principal | undefined, model: string): number {
    if (this.rules.length === 0) return 0;
    const now = this.now();
    const matched: { bucket: Bucket; rule: RateLimitRule }[] = [];
    let waitMs = 0;
    for (let i = 0; i < this.rules.length; i++) {
      const rule = this.rules[i]!;
      if (rule.principals && !(who && matchesAny(who, rule.principals))) continue;
      if (rule.models && !(model !== '' && (rule.models.includes('*') || rule.models.includes(model)))) continue;
      const key = `${i}\u0000${rule.principals ? who!.label : ''}\u0000${rule.models ? model : ''}`;
      const burst = rule.burst ?? Math.max(1, Math.ceil(rule.requests_per_second));
      let bucket = this.buckets.get(key);
      if (!bucket) this.buckets.set(key, (bucket = { tokens: burst, at: now }));
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rule.requests_per_second);
      bucket.at = now;
      if (bucket.tokens < 1) waitMs = Math.max(waitMs, ((1 - bucket.tokens) / rule.requests_per_second) * 1000);
      matched.push({ bucket, rule });
    }
    if (waitMs > 0) return Math.ceil(waitMs);
    for (const m of matched) m.bucket.tokens -= 1;
    return 0;
  }
}
