/**
 * Circuit breakers with real opossum: tripping on server faults only, fast rejection while open, one
 * probe in half-open, the bulkhead, transition events, and clean shutdown. Timing is driven by the
 * breakers' own 'state' events; the guard timer in nextState only turns a hang into a failure.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Code, ServingError } from '../src/core/errors';
import { breakerConfigSchema, defaultBreakerConfig } from '../src/resilience/breaker-config';
import { BreakerRegistry, isServerFault, ModelBreaker, type BreakerState, type BreakerTransition } from '../src/resilience/circuit-breaker';

const cfg = (over: Record<string, unknown> = {}) => breakerConfigSchema.parse({ volume_threshold: 4, ...over });
const breaker = (over: Record<string, unknown> = {}, key = 'mlp@1') => new ModelBreaker(key, 'mlp', '1', cfg(over));
const fault = (code: Code, extra: object = {}) => Object.assign(new ServingError(code, `boom ${Code[code]}`), extra);

/** An action that counts its calls and settles as told. */
function action(outcome: () => Promise<unknown>) {
  const a = { calls: 0, run: () => (a.calls++, outcome()) };
  return a;
}
const failing = (code: Code, extra: object = {}) => action(() => Promise.reject(fault(code, extra)));

function deferred() {
  let resolve!: (v: string) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<string>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** Resolves on the breaker's next transition to `to`; the ref'd guard keeps the loop alive meanwhile. */
function nextState(b: ModelBreaker, to: BreakerState, guardMs = 5000): Promise<BreakerTransition> {
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`no transition to ${to} within ${guardMs}ms`)), guardMs);
    const on = (t: BreakerTransition) => {
      if (t.to !== to) return;
      clearTimeout(guard);
      b.off('state', on);
      resolve(t);
    };
    b.on('state', on);
  });
}

async function failTimes(b: ModelBreaker, n: number, code: Code = Code.INTERNAL): Promise<void> {
  for (let i = 0; i < n; i++) await assert.rejects(b.fire(failing(code).run), (e: ServingError) => e.code === code);
}

async function trip(b: ModelBreaker): Promise<void> {
  await failTimes(b, b.config.volume_threshold);
  assert.equal(b.state, 'open');
}

test('config: production defaults, unknown keys and inconsistent windows rejected', () => {
  assert.deepEqual(defaultBreakerConfig(), {
    enabled: true, error_threshold_percentage: 50, volume_threshold: 10, rolling_window_ms: 10000,
    rolling_buckets: 10, reset_timeout_ms: 5000, capacity: 0,
  });
  assert.equal(breakerConfigSchema.safeParse({ reset_timeout: 5 }).success, false);
  assert.equal(breakerConfigSchema.safeParse({ error_threshold_percentage: 100 }).success, false);
  const bad = breakerConfigSchema.safeParse({ rolling_window_ms: 1005 });
  assert.match(bad.error?.issues[0]?.message ?? '', /multiple of rolling_buckets/);
});

test('isServerFault: server codes and non-ServingErrors count, client codes do not', () => {
  for (const c of [Code.INTERNAL, Code.UNAVAILABLE, Code.UNKNOWN, Code.DATA_LOSS]) assert.equal(isServerFault(fault(c)), true, Code[c]);
  const client = [Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.CANCELLED, Code.FAILED_PRECONDITION, Code.OUT_OF_RANGE,
    Code.RESOURCE_EXHAUSTED, Code.UNAUTHENTICATED, Code.PERMISSION_DENIED, Code.DEADLINE_EXCEEDED];
  for (const c of client) assert.equal(isServerFault(fault(c)), false, Code[c]);
  assert.equal(isServerFault(fault(Code.DEADLINE_EXCEEDED, { serverFault: true })), true);
  assert.equal(isServerFault(new TypeError('x')), true);
  assert.equal(isServerFault(undefined), true);
});

test('server faults open it once volume_threshold is reached; open rejects at once without running', async () => {
  const b = breaker({ reset_timeout_ms: 60_000 });
  const events: BreakerTransition[] = [];
  b.on('state', (t: BreakerTransition) => events.push(t));
  await failTimes(b, 3);
  assert.equal(b.state, 'closed', 'below volume_threshold it stays closed');
  const before = Date.now();
  await failTimes(b, 1);
  assert.equal(b.state, 'open');
  assert.ok(b.nextProbeAt! >= before + 60_000 && b.nextProbeAt! <= Date.now() + 60_000);
  assert.deepEqual(events.map((e) => [e.key, e.from, e.to]), [['mlp@1', 'closed', 'open']]);
  assert.match(events[0]!.reason, /opened after 4 of 4 calls failed in the last 10s \(last error: INTERNAL: boom INTERNAL\)/);

  const a = action(() => Promise.resolve('ran'));
  for (let i = 0; i < 20; i++) {
    await assert.rejects(b.fire(a.run), (e: ServingError) => {
      assert.equal(e.code, Code.UNAVAILABLE);
      assert.match(e.message, /^model 'mlp' version 1 is unavailable: circuit breaker open, opened after 4 of 4 calls failed/);
      assert.match(e.message, /next probe at \d{4}-\d\d-\d\dT[\d:.]+Z \(in (59\.\d|60)s\)$/);
      return true;
    });
  }
  assert.equal(a.calls, 0, 'the action must not run while open');
  b.shutdown();
});

test('client errors never open it; serverFault timeouts and non-ServingErrors do', async () => {
  const b = breaker();
  b.on('state', () => assert.fail('no transition expected'));
  const codes = [Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.CANCELLED, Code.DEADLINE_EXCEEDED, Code.RESOURCE_EXHAUSTED];
  for (const code of codes) {
    const err = fault(code);
    for (let i = 0; i < 25; i++) await assert.rejects(b.fire(() => Promise.reject(err)), (e) => e === err, 'passed through unchanged');
  }
  assert.equal(b.state, 'closed');
  b.shutdown();
  // A fresh breaker: opossum records filtered errors as successes, so the flood above dilutes the rate.
  const t = breaker();
  await failTimes(t, 4, Code.DEADLINE_EXCEEDED);
  assert.equal(t.state, 'closed');
  const timeouts = breaker();
  for (let i = 0; i < 4; i++) await assert.rejects(timeouts.fire(failing(Code.DEADLINE_EXCEEDED, { serverFault: true }).run));
  assert.equal(timeouts.state, 'open', 'execution timeouts flagged serverFault count');
  // Non-ServingErrors are faults; a rejection with undefined must not hang the call inside opossum.
  const bugs = breaker({ volume_threshold: 2 });
  await assert.rejects(bugs.fire(() => Promise.reject(new TypeError('bug'))), TypeError);
  await assert.rejects(bugs.fire(() => Promise.reject(undefined)), (e) => e === undefined);
  assert.equal(bugs.state, 'open');
  [t, timeouts, bugs].forEach((x) => x.shutdown());
});

test('other model versions are unaffected by an open breaker', async () => {
  const registry = new BreakerRegistry();
  const a = registry.get('mlp@1', 'mlp', '1', cfg({ reset_timeout_ms: 60_000 }));
  const other = registry.get('mlp@2', 'mlp', '2', cfg());
  const third = registry.get('convnet@1', 'convnet', '1', cfg());
  await trip(a);
  assert.equal(await other.fire(() => Promise.resolve('v2')), 'v2');
  assert.equal(await third.fire(() => Promise.resolve('c1')), 'c1');
  const states = registry.states();
  assert.deepEqual(states.map((s) => [s.key, s.state]), [['mlp@1', 'open'], ['mlp@2', 'closed'], ['convnet@1', 'closed']]);
  assert.equal(typeof states[0]!.nextProbeAt, 'number');
  assert.equal(states[1]!.nextProbeAt, undefined);
  registry.shutdown();
});

test('after reset_timeout it lets exactly one probe through; success closes with a fresh window', async () => {
  const b = breaker({ reset_timeout_ms: 30 });
  const halfOpen = nextState(b, 'half_open');
  await trip(b);
  assert.match((await halfOpen).reason, /letting one probe/);
  assert.equal(b.nextProbeAt, undefined);

  const probe = deferred();
  const probeAction = action(() => probe.promise);
  const result = b.fire(probeAction.run);
  const others = action(() => Promise.resolve('x'));
  for (let i = 0; i < 5; i++) {
    await assert.rejects(b.fire(others.run), (e: ServingError) =>
      e.code === Code.UNAVAILABLE && /circuit breaker half_open, a probe request is testing recovery now/.test(e.message));
  }
  assert.equal(probeAction.calls, 1);
  assert.equal(others.calls, 0, 'only the probe runs while half-open');

  const closed = nextState(b, 'closed');
  probe.resolve('recovered');
  assert.equal(await result, 'recovered');
  assert.deepEqual(await closed, { key: 'mlp@1', from: 'half_open', to: 'closed', reason: 'the recovery probe succeeded' });
  // The window was flushed on close: the old failures do not make the next one re-trip it.
  await failTimes(b, 3);
  assert.equal(b.state, 'closed');
  assert.equal(await b.fire(others.run), 'x');
  b.shutdown();
});

test('a failed probe re-opens it and a new probe follows after reset_timeout', async () => {
  const b = breaker({ reset_timeout_ms: 30 });
  const seen: string[] = [];
  b.on('state', (t: BreakerTransition) => seen.push(`${t.from}->${t.to}`));
  let halfOpen = nextState(b, 'half_open');
  await trip(b);
  await halfOpen;
  const reopened = nextState(b, 'open');
  halfOpen = nextState(b, 'half_open');
  await assert.rejects(b.fire(failing(Code.UNAVAILABLE).run), (e: ServingError) => e.code === Code.UNAVAILABLE);
  const t = await reopened;
  assert.equal(t.from, 'half_open');
  assert.match(t.reason, /re-opened because the recovery probe failed with UNAVAILABLE: boom/);
  assert.equal(typeof b.nextProbeAt, 'number');
  await halfOpen;
  await b.fire(() => Promise.resolve());
  assert.equal(b.state, 'closed');
  assert.deepEqual(seen, ['closed->open', 'open->half_open', 'half_open->open', 'open->half_open', 'half_open->closed']);
  b.shutdown();
});

test('a probe that ends in a client error (never really ran) re-opens instead of closing', async () => {
  const b = breaker({ reset_timeout_ms: 30 });
  const halfOpen = nextState(b, 'half_open');
  await trip(b);
  await halfOpen;
  const reopened = nextState(b, 'open');
  await assert.rejects(b.fire(failing(Code.CANCELLED).run), (e: ServingError) => e.code === Code.CANCELLED);
  assert.match((await reopened).reason, /probe ended with CANCELLED: .*not a server fault/);
  b.shutdown();
});

test('capacity: over the limit gives RESOURCE_EXHAUSTED and counts neither as failure nor success', async () => {
  const b = breaker({ capacity: 2 });
  const held = [deferred(), deferred()];
  const running = held.map((d) => b.fire(() => d.promise));
  const extra = action(() => Promise.resolve('x'));
  for (let i = 0; i < 10; i++) {
    await assert.rejects(b.fire(extra.run), (e: ServingError) =>
      e.code === Code.RESOURCE_EXHAUSTED && e.message === "model 'mlp' version 1 is at its concurrency limit of 2; retry shortly");
  }
  assert.equal(extra.calls, 0);
  assert.equal(b.state, 'closed');
  held.forEach((d) => d.resolve('ok'));
  assert.deepEqual(await Promise.all(running), ['ok', 'ok']);
  assert.equal(await b.fire(extra.run), 'x', 'slots are released');
  // Counted as calls, the 10 rejections would make it 4 failures of 17: too few to open it.
  const opened = nextState(b, 'open');
  await failTimes(b, 4);
  assert.match((await opened).reason, /opened after 4 of 7 calls failed/);
  b.shutdown();
});

test('enabled: false never opens, but the capacity limit still applies', async () => {
  const b = breaker({ enabled: false, capacity: 1 });
  await failTimes(b, 20);
  assert.equal(b.state, 'closed');
  const d = deferred();
  const running = b.fire(() => d.promise);
  await assert.rejects(b.fire(() => Promise.resolve('x')), (e: ServingError) => e.code === Code.RESOURCE_EXHAUSTED);
  d.resolve('done');
  assert.equal(await running, 'done');
  b.shutdown();
});

test('registry: get reuses, config change replaces, remove and shutdown stop breakers without ref\'d timers', async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const baseline = timers();
  const registry = new BreakerRegistry();
  const transitions: BreakerTransition[] = [];
  registry.on('state', (t: BreakerTransition) => transitions.push(t));
  const config = cfg({ reset_timeout_ms: 60_000 });
  const b = registry.get('mlp@1', 'mlp', '1', config);
  assert.equal(registry.get('mlp@1', 'mlp', '1', cfg({ reset_timeout_ms: 60_000 })), b, 'same config: same breaker');
  await trip(b);
  assert.deepEqual(transitions.map((t) => [t.key, t.to]), [['mlp@1', 'open']], 'registry re-emits transitions');
  assert.equal(timers(), baseline, 'rolling-window and reset timers are unref\'d');

  const replaced = registry.get('mlp@1', 'mlp', '1', cfg({ reset_timeout_ms: 1000 }));
  assert.notEqual(replaced, b);
  assert.equal(b.isShutdown, true);
  assert.equal(replaced.state, 'closed');

  assert.equal(registry.remove('mlp@1'), true);
  assert.equal(registry.remove('mlp@1'), false);
  assert.equal(replaced.state, 'open', 'a shut-down breaker refuses everything');
  assert.equal(replaced.nextProbeAt, undefined);
  const a = action(() => Promise.resolve('x'));
  await assert.rejects(replaced.fire(a.run), (e: ServingError) =>
    e.code === Code.UNAVAILABLE && /model 'mlp' version 1 is unavailable: it was unloaded/.test(e.message));
  assert.equal(a.calls, 0);
  assert.deepEqual(registry.states(), []);

  const fresh = registry.get('mlp@1', 'mlp', '1', config);
  registry.get('mlp@2', 'mlp', '2', config);
  await trip(fresh);
  registry.shutdown();
  assert.deepEqual(registry.states(), []);
  assert.equal(fresh.isShutdown, true);
  // The test file exiting on its own is the proof that no opossum timer keeps the process alive.
});
