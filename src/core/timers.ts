/**
 * Timers that cannot overflow. Node stores a timer's delay as a signed 32-bit number of milliseconds:
 * anything above 2^31-1 ms (~24.8 days) is replaced by 1 ms with a TimeoutOverflowWarning, so a client
 * asking for a 30-day queue timeout would be timed out at once. Every delay the server derives from
 * client input or config goes through here.
 */

/** The longest delay setTimeout honours (2^31-1 ms, ~24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `ms` as a delay setTimeout honours: not negative, not NaN, at most MAX_TIMER_MS. */
export function clampDelay(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(ms, MAX_TIMER_MS);
}

export interface LongTimer {
  clear(): void;
}

/**
 * Calls `fn` at epoch ms `at`, however far away: a delay beyond MAX_TIMER_MS waits in steps and re-arms,
 * so the callback never fires early. `unref` keeps a far-off timer from holding the process open.
 */
export function setTimerAt(at: number, fn: () => void, options: { unref?: boolean } = {}): LongTimer {
  let handle: NodeJS.Timeout | undefined;
  const arm = () => {
    const remaining = at - Date.now();
    handle = setTimeout(remaining > MAX_TIMER_MS ? arm : fn, clampDelay(remaining));
    if (options.unref) handle.unref();
  };
  arm();
  return { clear: () => clearTimeout(handle) };
}
