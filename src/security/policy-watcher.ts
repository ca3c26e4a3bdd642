/**
 * Reloads the access policy (--auth-config) when it, or the JWT key file it names, changes: API keys added or
 * revoked, permissions edited, a JWKS rotated, all without a restart. Polled every --auth-reload-secs by
 * content, like the TLS files (src/security/tls-files.ts says why not fs.watch). A policy that no longer loads
 * is logged once per content and the previous one keeps guarding: a typo never opens the server.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { Logger } from '../log';
import { AccessGuard } from './access-guard';
import { policyPath } from './access-policy';

/** The policy file's bytes and those of the key file it names, as one digest ('' parts for unreadable files). */
function digestOf(guard: AccessGuard): string {
  const files = [guard.policy.file];
  const j = guard.policy.jwt;
  if (j) files.push(policyPath(guard.policy, (j.jwks_file ?? j.public_key_file)!));
  const h = createHash('sha256');
  for (const f of files) {
    try {
      h.update(fs.readFileSync(f));
    } catch {
      h.update('\u0000unreadable');
    }
    h.update('\u0000');
  }
  return h.digest('hex');
}

export class PolicyWatcher {
  private timer: NodeJS.Timeout | undefined;
  private digest: string;
  private refused = '';
  private polling = false;

  constructor(
    private guard: AccessGuard,
    private readonly intervalMs: number,
    private readonly apply: (guard: AccessGuard) => void,
    private readonly log: Logger,
  ) {
    this.digest = digestOf(guard);
  }

  start(): this {
    this.timer ??= setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check: reloads when the content changed; resolves when done (tests call it to avoid waiting). */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const digest = digestOf(this.guard);
      if (digest === this.digest || digest === this.refused) return;
      try {
        const next = await AccessGuard.fromFile(this.guard.policy.file, this.guard);
        this.guard = next;
        this.digest = digest;
        this.refused = '';
        this.apply(next);
        this.log.info({ policy: next.policy.file, apiKeys: next.policy.api_keys.length }, `access policy ${next.policy.file} reloaded: ${next.policy.api_keys.length} API keys, ${next.policy.permissions?.length ?? 'no'} permission rules`);
      } catch (err) {
        this.refused = digest;
        this.log.warn({ policy: this.guard.policy.file, reason: (err as Error).message }, `access policy changed but was not reloaded; the previous policy keeps guarding: ${(err as Error).message}`);
      }
    } finally {
      this.polling = false;
    }
  }
}
