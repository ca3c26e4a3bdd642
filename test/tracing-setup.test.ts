/**
 * The tracing SDK as the server starts it (OTEL_* variables): it registers the synchronous context manager,
 * so no async hooks run for every promise in the process (src/telemetry/sync-context.ts). A context is active
 * while the function given to context.with() runs (so a manager is registered at all), and not in its
 * continuations.
 * Its own file: the SDK registers process-wide globals, which no other test of the same process should see.
 */
import { context, createContextKey } from '@opentelemetry/api';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTracing } from '../src/telemetry/tracing';

test('the tracing SDK starts with a context manager that does not carry a context across async steps', async () => {
  // No span is made here, so nothing is exported.
  const handle = startTracing({ OTEL_TRACES_EXPORTER: 'otlp' });
  assert.ok(handle, 'tracing started');
  try {
    const key = createContextKey('tensorgate.test');
    const ctx = context.active().setValue(key, 'set');
    const seen = await context.with(ctx, async () => {
      const now = context.active().getValue(key);
      await Promise.resolve();
      return { now, afterAwait: context.active().getValue(key) };
    });
    assert.deepEqual(seen, { now: 'set', afterAwait: undefined });
    assert.equal(context.active().getValue(key), undefined, 'restored after with()');
  } finally {
    await handle.shutdown();
  }
});
