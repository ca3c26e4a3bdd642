/**
 * `tensorgate keys new NAME`: a new API key (256 random bits, base64url, prefixed `tg_` so a leaked one is easy
 * to recognise in a scanner), and the access-policy line that admits it: only its sha256 goes into the policy.
 * `tensorgate keys hash` prints that line for a key read from stdin (an existing key being moved into a policy).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

const NAME = /^[\w.@-]{1,64}$/;

export function policyLine(name: string, key: string): string {
  return `  - { name: ${name}, sha256: "${createHash('sha256').update(key).digest('hex')}" }`;
}

export function keysCommand(args: string[], out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): void {
  const [sub, name] = args;
  if (sub === 'new') {
    if (!name || !NAME.test(name)) throw new Error('usage: tensorgate keys new NAME (NAME: 1-64 letters, digits, _ . @ -; how permissions and logs name the key: key:NAME)');
    const key = `tg_${randomBytes(32).toString('base64url')}`;
    out(`# the API key: give it to ${name}; the server keeps only its hash and cannot show it again`);
    out(key);
    out('# add to the access policy (--auth-config) under api_keys:');
    out(policyLine(name, key));
    return;
  }
  if (sub === 'hash') {
    if (!name || !NAME.test(name)) throw new Error('usage: tensorgate keys hash NAME < keyfile (the key on stdin)');
    const key = readFileSync(0, 'utf8').trim();
    if (!key || /\s/.test(key)) throw new Error('keys hash: expected one key on stdin, without spaces');
    out(policyLine(name, key));
    return;
  }
  throw new Error(`usage: tensorgate keys new NAME | tensorgate keys hash NAME < keyfile${sub ? ` (unknown keys command '${sub.slice(0, 32)}')` : ''}`);
}
