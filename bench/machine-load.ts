/**
 * Whole-machine CPU from /proc/stat, to tell when something outside the benchmark (a compiler, a test
 * run, another tenant of the VM) took CPU during a measurement. On a 2-core machine one stray `tsc`
 * halves a ceiling; such a point is re-measured rather than reported as tensorgate's speed.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export interface MachineCpu {
  /**
   * CPU time (µs, all cores) in user and system mode. irq/softirq time is left out: loopback TCP is
   * processed there and, depending on kernel accounting, may not be charged to our processes.
   */
  busyUs: number;
  /** Time (µs) the hypervisor gave this VM's vCPUs to someone else. */
  stealUs: number;
}

export function machineCpu(): MachineCpu {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
  const [user, nice, system, , , , , steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const us = (ticks: number) => (ticks / CLOCK_TICKS) * 1e6;
  return { busyUs: us(user! + nice! + system!), stealUs: us(steal!) };
}

/** % of one core used by anything but `ownCpuUs` (our processes' CPU over the same interval). */
export function foreignCpuPct(before: MachineCpu, after: MachineCpu, ownCpuUs: number, wallMs: number): number {
  return Math.max(0, (after.busyUs - before.busyUs - ownCpuUs) / 1000 / wallMs) * 100;
}

export function stealPct(before: MachineCpu, after: MachineCpu, wallMs: number): number {
  return ((after.stealUs - before.stealUs) / 1000 / wallMs) * 100;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits (up to `maxWaitMs`) until the machine is quiet: less than `thresholdPct` of one core busy over a
 * 500 ms sample, with our own children idle. Returns the last sample's busy % either way.
 */
export async function waitForQuiet(thresholdPct: number, maxWaitMs: number, log: (s: string) => void): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let warned = false;
  for (;;) {
    const a = machineCpu();
    const own0 = process.cpuUsage();
    await sleep(500);
    const own = process.cpuUsage(own0);
    const busy = foreignCpuPct(a, machineCpu(), own.user + own.system, 500);
    if (busy < thresholdPct || Date.now() > deadline) return busy;
    if (!warned) log(`  (machine busy: ${busy.toFixed(0)}% of a core used by other processes; waiting up to ${(maxWaitMs / 1000).toFixed(0)} s for quiet)`);
    warned = true;
  }
}
