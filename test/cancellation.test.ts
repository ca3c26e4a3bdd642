/**
 * Cancellation, the per-call signal the pipeline listens to: the AbortSignal behaviour the scheduler and
 * the result cache rely on, without an EventTarget per call.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cancellation } from '../src/core/cancellation';

test('abort runs each listener once, skips removed ones, and later aborts do nothing', () => {
  const c = new Cancellation();
  const calls: string[] = [];
  const kept = () => calls.push('kept');
  const removed = () => calls.push('removed');
  c.addEventListener('abort', kept);
  c.addEventListener('abort', removed);
  c.removeEventListener('abort', removed);
  assert.equal(c.aborted, false);
  c.abort();
  c.abort();
  assert.equal(c.aborted, true);
  assert.deepEqual(calls, ['kept']);
  c.addEventListener('abort', () => calls.push('late'));
  assert.deepEqual(calls, ['kept'], 'as with AbortSignal, a listener added after the abort never runs');
});

test('one listener throwing does not keep the others from running', () => {
  const c = new Cancellation();
  let ran = false;
  c.addEventListener('abort', () => {
    throw new Error('listener bug');
  });
  c.addEventListener('abort', () => (ran = true));
  c.abort();
  assert.equal(ran, true);
});
