/**
 * A version pinned by sha256 (config.yaml `versions`) is loaded from the very bytes its worker hashed, on every
 * worker, a replacement worker included: a model file swapped after the repository's check never loads, even
 * when a worker crashes later and the pool reloads its sessions. ExecutionPool with real workers and models.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { ExecutionPool } from '../src/runtime/execution-pool';
import type { SessionSettings } from '../src/runtime/messages';
import { BUNDLED_MODELS_DIR, seededFloats, tempDir } from './common';

const settings: SessionSettings = { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', executionProviders: ['cpu'] };
const MLP = path.join(BUNDLED_MODELS_DIR, 'mlp', '1', 'model.onnx');
const CONVNET = path.join(BUNDLED_MODELS_DIR, 'convnet', '1', 'model.onnx');
const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const input = () => [{ name: 'input', dtype: 'FP32' as const, shape: [2, 64], data: new Uint8Array(seededFloats(128, 7).buffer) }];

const dir = tempDir('pinned');
const pool = new ExecutionPool({ workers: 1 });
after(async () => {
  await pool.close();
  dir.cleanup();
});

test('a pinned session loads only the bytes that match, answers as the unpinned one, and a replacement worker refuses a swapped file', async () => {
  const file = path.join(dir.dir, 'model.onnx');
  fs.copyFileSync(MLP, file);
  await assert.rejects(pool.load('wrong', file, { ...settings, sha256: '0'.repeat(64) }), /the model file does not match its sha256: config says 0{64}, the file has [0-9a-f]{64}/);
  await pool.load('plain', file, settings);
  await pool.load('pinned', file, { ...settings, sha256: sha256(MLP) });
  const plain = await pool.run('plain', input(), ['logits']);
  const pinned = await pool.run('pinned', input(), ['logits']);
  assert.deepEqual(Buffer.from(pinned.outputs[0]!.data), Buffer.from(plain.outputs[0]!.data));

  // The file is swapped for another model, then the worker dies: the replacement reloads both sessions.
  fs.copyFileSync(CONVNET, file);
  const replaced = once(pool, 'worker-restarted');
  const refused = once(pool, 'session-restore-failed');
  await pool.exitOnNextRunForTest('plain');
  await assert.rejects(pool.run('plain', input(), ['logits']));
  await replaced;
  const [failure] = (await refused) as [{ key: string; reason: string }];
  assert.equal(failure.key, 'pinned');
  assert.match(failure.reason, /the model file does not match its sha256/);
  // The unpinned session took whatever the path now holds (the convnet refuses mlp's input); the pinned one did
  // not load at all rather than load other bytes.
  await assert.rejects(pool.run('plain', input(), ['logits']), /Missing Input: image/);
  await assert.rejects(pool.run('pinned', input(), ['logits']), /session 'pinned' is not loaded in this worker/);
});
