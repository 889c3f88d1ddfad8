import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Exclusive, type ExclusiveLock } from '../src/index.js';

/**
 * What waiting costs: CPU time per second used by a process whose
 * asynchronous waiters (`wait: true`) wait on locks this process holds, for
 * many distinct names (each name is one OS-level waiter) and for many
 * waiters of one name (they queue in-process behind one OS-level waiter).
 */

export interface WaitCost {
  readonly label: string;
  /** CPU milliseconds per second of waiting (10 = 1 % of one core). */
  readonly cpuMsPerSecond: number;
  /** False when the waiting process could not watch files (no inotify instance left): its waits polled. */
  readonly watching: boolean;
}

const ROOT = resolve(__dirname, '..');
/**
 * Long enough for the polls of 1000 waiting names to back off to their
 * steady pace (one per 5 s each); then two of those rounds are measured.
 */
const SETTLE_MS = 10_000;
const MEASURE_MS = 10_000;

/** The cases measured: distinct names and waiters per run. */
export const WAIT_COST_CASES = [
  { names: 100, waiters: 100 },
  { names: 1000, waiters: 1000 },
  { names: 1, waiters: 1000 },
] as const;

export function waitCostLabel(names: number, waiters: number): string {
  return names === waiters ? `${names} distinct names, 1 waiter each` : `${names} name, ${waiters} waiters`;
}

export async function waitCosts(dir: string): Promise<WaitCost[]> {
  const results: WaitCost[] = [];
  for (const { names, waiters } of WAIT_COST_CASES) {
    const held: ExclusiveLock[] = Array.from({ length: names }, (_, i) => Exclusive.lock({ name: `wait-cost-${i}`, dir }));
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          '--import',
          'tsx',
          join(__dirname, 'wait-cost-peer.ts'),
          dir,
          String(names),
          String(waiters),
          String(SETTLE_MS),
          String(MEASURE_MS),
        ],
        { cwd: ROOT }
      );
      const { cpuMsPerSecond, watching } = JSON.parse(stdout) as { cpuMsPerSecond: number; watching: boolean };
      results.push({ label: waitCostLabel(names, waiters), cpuMsPerSecond, watching });
    } finally {
      for (const lock of held) await lock.release();
    }
  }
  return results;
}
