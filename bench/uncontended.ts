import { join } from 'node:path';
import * as properLockfile from 'proper-lockfile';
import { exclusive, LockDriverError, type ExclusiveOptions } from '../src/index.js';
import { summarize, type Summary } from './stats.js';

/**
 * Uncontended acquire + release: what every call of an exclusive function
 * pays when nobody else holds the lock. Each operation is timed on its own
 * (hrtime costs ~50 ns, the operations 10-500 us), and the contenders run
 * interleaved in short rounds, so a noisy neighbour hurts all of them alike;
 * ratios are taken round by round for the same reason.
 */

export interface Contender {
  readonly label: string;
  /** Operations per round (slower contenders get fewer, to bound the run time). */
  readonly iterations: number;
  readonly op: () => void | Promise<void>;
}

export interface Measured {
  readonly label: string;
  readonly all: Summary;
  /** The median of each round, to show the spread. */
  readonly roundMedians: number[];
}

export const ROUNDS = 10;
const WARMUP = 200;
/** Operations per round: fast contenders (~10-50 us) and slow ones (~150-500 us). */
const FAST = 1000;
const SLOW = 200;

export async function measure(contenders: readonly Contender[], rounds = ROUNDS): Promise<Measured[]> {
  const samples = contenders.map(() => [] as number[]);
  const roundMedians = contenders.map(() => [] as number[]);
  for (const c of contenders) for (let i = 0; i < WARMUP; i++) await c.op();
  for (let round = 0; round < rounds; round++) {
    for (const [index, c] of contenders.entries()) {
      const times = new Float64Array(c.iterations);
      for (let i = 0; i < c.iterations; i++) {
        const start = process.hrtime.bigint();
        const result = c.op();
        if (result !== undefined) await result; // sync contenders are timed without an await
        times[i] = Number(process.hrtime.bigint() - start);
      }
      samples[index].push(...times);
      roundMedians[index].push(summarize(times).median);
    }
  }
  return contenders.map((c, i) => ({ label: c.label, all: summarize(samples[i]), roundMedians: roundMedians[i] }));
}

/** `peer`'s median over `ours`, round by round (rounds are measured close together in time): the median and the range. */
export function roundRatios(ours: Measured, peer: Measured): { median: number; min: number; max: number } {
  const ratios = ours.roundMedians.map((m, round) => peer.roundMedians[round] / m).sort((a, b) => a - b);
  return { median: ratios[Math.floor((ratios.length - 1) / 2)], min: ratios[0], max: ratios[ratios.length - 1] };
}

/** exclusive(fn) on a sync and an async no-op, through `driver` (undefined: the platform's native one). */
export function exclusiveContenders(dir: string, driver: ExclusiveOptions['driver'], tag: string): Contender[] {
  const options = (name: string): ExclusiveOptions => ({ name, dir, ...(driver === undefined ? {} : { driver }) });
  const syncNoop = exclusive(() => {}, options(`uncontended-sync-${tag}`));
  const asyncNoop = exclusive(async () => {}, options(`uncontended-async-${tag}`));
  return [
    { label: label('sync', tag), iterations: FAST, op: syncNoop },
    { label: label('async', tag), iterations: FAST, op: asyncNoop },
  ];
}

/**
 * The same no-ops taken shared and counted (posix): a shared acquisition
 * passes the writers' gate and holds a record slot, a counted one takes the
 * mode file and a slot, so both cost a few flocks more than an exclusive one.
 */
export function modeContenders(dir: string): Contender[] {
  const make = (tag: string, extra: ExclusiveOptions): Contender[] => {
    const options = (name: string): ExclusiveOptions => ({ name, dir, driver: 'posix', ...extra });
    return [
      { label: label('sync', `posix, ${tag}`), iterations: FAST, op: exclusive(() => {}, options(`uncontended-sync-${tag}`)) },
      { label: label('async', `posix, ${tag}`), iterations: FAST, op: exclusive(async () => {}, options(`uncontended-async-${tag}`)) },
    ];
  };
  return [...make('shared', { mode: 'shared' }), ...make('limit 3', { limit: 3 })];
}

function label(form: 'sync' | 'async', driver: string): string {
  return `exclusive(fn), ${form} no-op (${driver})`;
}

/**
 * proper-lockfile on a file in the same directory. `realpath: false` so the
 * file need not exist (it does not change the locking: mkdir/rmdir of
 * `<file>.lock` plus its mtime probe).
 */
export function properLockfileContenders(dir: string): Contender[] {
  const syncFile = join(dir, 'proper-lockfile-sync');
  const asyncFile = join(dir, 'proper-lockfile-async');
  const options = { realpath: false };
  return [
    {
      label: 'proper-lockfile lockSync + unlockSync',
      iterations: SLOW,
      op: () => {
        properLockfile.lockSync(syncFile, options);
        properLockfile.unlockSync(syncFile, options);
      },
    },
    {
      label: 'proper-lockfile await lock() + release()',
      iterations: SLOW,
      op: async () => {
        const release = await properLockfile.lock(asyncFile, options);
        await release();
      },
    },
  ];
}

/**
 * The portable driver's contenders, or why it cannot run here. Each form is
 * tried on its own: an asynchronous driver refuses sync functions
 * (ERR_DRIVER_UNSUPPORTED) but still serves the async one.
 */
export function portableContenders(dir: string): { contenders: Contender[]; skipped: string[] } {
  const [sync, async] = [label('sync', 'portable'), label('async', 'portable')];
  const contenders: Contender[] = [];
  const skipped: string[] = [];
  const options = (name: string): ExclusiveOptions => ({ name, dir, driver: 'portable' });
  const forms: Array<[string, () => Contender['op']]> = [
    [sync, () => exclusive(() => {}, options('uncontended-sync-portable'))],
    [async, () => exclusive(async () => {}, options('uncontended-async-portable'))],
  ];
  for (const [label, make] of forms) {
    try {
      contenders.push({ label, iterations: SLOW, op: make() }); // pid files: create + link + unlink per acquisition
    } catch (error) {
      if (!(error instanceof LockDriverError)) throw error;
      skipped.push(`${label}: ${error.code}: ${error.message}`);
    }
  }
  return { contenders, skipped };
}
