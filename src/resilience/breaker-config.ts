/**
 * The `circuit_breaker:` section of a model's config.yaml: how the per-version circuit breaker
 * (src/resilience/circuit-breaker.ts) trips, recovers and bounds concurrency. Every key is optional.
 *
 * @example
 * ```yaml
 * circuit_breaker:
 *   error_threshold_percentage: 50   # open when MORE than this share of the window's calls failed...
 *   volume_threshold: 10             # ...and at least this many calls were made in the window
 *   rolling_window_ms: 10000
 *   rolling_buckets: 10
 *   reset_timeout_ms: 5000           # open this long, then let one probe request through
 *   capacity: 0                      # max concurrent calls for the version; 0 = unlimited
 * ```
 *
 * There is deliberately no execution timeout: a running ONNX Runtime inference cannot be cancelled, so
 * timing it out here would only free the breaker's slot while the worker stays busy. The worker pool
 * owns execution timeouts and marks them as server faults (see isServerFault).
 */
import { MAX_TIMER_MS } from '../core/timers';
import { z } from 'zod';

export const breakerConfigSchema = z
  .strictObject({
    /** false = no circuit breaking for this model (capacity still applies). */
    enabled: z.boolean().default(true),
    /**
     * Server-side failures as a percentage of the calls started in the window; the breaker opens when the
     * rate is strictly greater (opossum compares with `>`). 50 is the conventional Hystrix/opossum value.
     */
    error_threshold_percentage: z.number().gt(0).lt(100).default(50),
    /**
     * Calls that must be started in the window before the breaker may open, so that two failures out of
     * the first three calls after a deploy do not take a model offline. 10 per 10 s is low enough to
     * protect a lightly used model and high enough not to flap on a single bad request burst.
     */
    volume_threshold: z.number().int().min(1).default(10),
    /** Length of the rolling statistics window. */
    rolling_window_ms: z.number().int().min(100).max(MAX_TIMER_MS).default(10_000),
    /** The window is kept as this many buckets; old buckets drop off one at a time. */
    rolling_buckets: z.number().int().min(1).max(1000).default(10),
    /**
     * How long the breaker stays open before one probe request is let through. 5 s covers a worker
     * restart and model reload without leaving a recovered model refused for long.
     */
    reset_timeout_ms: z.number().int().min(1).max(MAX_TIMER_MS).default(5_000),
    /**
     * Bulkhead: most calls for this version in flight at once; more get RESOURCE_EXHAUSTED, which does
     * not count for or against the breaker. 0 = unlimited (the scheduler's queue already bounds work).
     */
    capacity: z.number().int().min(0).default(0),
  })
  // opossum rotates buckets every floor(window / buckets) ms: a remainder would silently shorten the
  // window, and a bucket under 10 ms would be a busy timer.
  .refine((c) => c.rolling_window_ms % c.rolling_buckets === 0, {
    message: 'rolling_window_ms must be a multiple of rolling_buckets',
    path: ['rolling_window_ms'],
  })
  .refine((c) => c.rolling_window_ms / c.rolling_buckets >= 10, {
    message: 'rolling_window_ms / rolling_buckets must be at least 10 ms',
    path: ['rolling_buckets'],
  });

export type BreakerConfig = z.infer<typeof breakerConfigSchema>;

/** All defaults: what a model without a `circuit_breaker:` section gets. */
export const defaultBreakerConfig = (): BreakerConfig => breakerConfigSchema.parse({});
