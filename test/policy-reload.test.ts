/**
 * The access policy changes without a restart: a key added is accepted, a key revoked is refused, and a policy
 * edited into something that does not load is logged while the previous one keeps guarding. The test runs the
 * watcher's poll itself (the interval is an hour), so nothing waits on time.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { createModelClient } from '../src/client/model-client';
import { copyBundledModel, expectStatus, tempDir, unary } from './common';
import { newKey, sha256, startLoggedServer, type LoggedServer } from './auth-fixtures';

const first = newKey();
const second = newKey();
let repo: { dir: string; cleanup: () => void };
let ts: LoggedServer;
let policyFile: string;
const clients: grpc.Client[] = [];

const listWith = (token: string) => {
  const c = createModelClient(`127.0.0.1:${ts.server.port}`, {}, { security: { token } });
  clients.push(c);
  return unary(c, 'ListModels', {});
};
const writePolicy = (keys: Record<string, string>) =>
  fs.writeFileSync(policyFile, `api_keys:\n${Object.entries(keys).map(([name, key]) => `  - { name: ${name}, sha256: "${sha256(key)}" }`).join('\n')}\n`);

before(async () => {
  repo = tempDir('policy-reload');
  const models = path.join(repo.dir, 'models');
  fs.mkdirSync(models);
  copyBundledModel(models, 'mlp');
  policyFile = path.join(repo.dir, 'policy.yaml');
  writePolicy({ first });
  ts = await startLoggedServer({ modelRepository: models, authConfig: policyFile, authReloadSecs: 3600 });
});

after(async () => {
  for (const c of clients) c.close();
  await ts?.close();
  repo?.cleanup();
});

test('a key added is accepted and a key revoked refused, without a restart', async () => {
  await listWith(first);
  await expectStatus(listWith(second), grpc.status.UNAUTHENTICATED);
  writePolicy({ first, second });
  await ts.server.policyWatcher!.poll();
  await listWith(second);
  writePolicy({ second });
  await ts.server.policyWatcher!.poll();
  await expectStatus(listWith(first), grpc.status.UNAUTHENTICATED, /not a known API key/);
  await listWith(second);
  assert.equal(ts.lines.filter((l) => /access policy .* reloaded/.test(String(l.msg))).length, 2);
});

test('a policy that no longer loads is logged once and the previous one keeps guarding', async () => {
  fs.writeFileSync(policyFile, 'api_keys: [{ name: broken, sha256: nothex }]\n');
  await ts.server.policyWatcher!.poll();
  await ts.server.policyWatcher!.poll();
  const warnings = ts.lines.filter((l) => /access policy changed but was not reloaded/.test(String(l.msg)));
  assert.equal(warnings.length, 1, 'one warning per distinct content');
  assert.match(String(warnings[0]!.reason), /api_keys\.0\.sha256: 64 hex digits/);
  await listWith(second);
  await expectStatus(listWith(first), grpc.status.UNAUTHENTICATED);
});
