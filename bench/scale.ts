import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Exclusive } from '../src/index.js';

/**
 * Scale: what many locks and many waiters cost one process, measured in a
 * fresh child process (bench/scale-peer.ts) so its memory and descriptors
 * are its own.
 */

const ROOT = resolve(__dirname, '..');
export const HELD_LOCKS = 10_000;
export const WAITERS = 1000;
const MEASURE_MS = 5000;

export interface HeldCost {
  readonly rssDelta: number;
  readonly fdsDelta: number;
  readonly idleFdsAfterRelease: number;
  readonly acquireMs: number;
  readonly releaseMs: number;
}

export interface Latency {
  readonly median: number;
  readonly p95: number;
}

export interface WaitersCost {
  readonly before: { stat: Latency; dns: Latency };
  readonly during: { stat: Latency; dns: Latency };
  readonly cpuMsPerSecond: number;
}

async function peer<T>(args: string[]): Promise<T> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', join(__dirname, 'scale-peer.ts'), ...args],
    {
      cwd: ROOT,
      maxBuffer: 1 << 20,
    }
  );
  return JSON.parse(stdout) as T;
}

/** One process taking and holding HELD_LOCKS distinct locks at once. */
export function heldCost(dir: string): Promise<HeldCost> {
  return peer<HeldCost>(['held', dir, String(HELD_LOCKS)]);
}

/** WAITERS asynchronous waiters in one process on one lock this process holds. */
export async function waitersCost(dir: string): Promise<WaitersCost> {
  const name = 'scale-waited';
  const lock = Exclusive.lock({ name, dir });
  try {
    return await peer<WaitersCost>(['waiters', dir, name, String(WAITERS), String(MEASURE_MS)]);
  } finally {
    await lock.release();
  }
}
