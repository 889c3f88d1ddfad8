// `exclusive-process/node-cron`: node-cron 4's RunCoordinator over any driver.
import { describe } from '../shared/describe.js';
import { InvalidArgumentError } from '../shared/errors.js';
import { MAX_WAIT_MS, optionalString, optionsRecord, type OptionsShape } from '../shared/validate.js';
import type { ExclusiveLock } from '../core/handle.js';
import { Exclusive } from './exclusive.js';
import { parseOptions, type ExclusiveOptions } from './options.js';

/**
 * node-cron 4's `RunCoordinator` (`import type { RunCoordinator } from
 * 'node-cron'`), declared here so that this package needs no node-cron types.
 * node-cron asks `shouldRun(key, ttlMs)` before each fire of a `distributed`
 * task (`key`: the task's name and the fire's time; `ttlMs`: the task's
 * `distributedLease`, default 30 000) and calls `onComplete(key)` after a run.
 *
 * @example
 * ```ts
 * const fleet: RunCoordinator = coordinator({ driver: postgres() });
 * ```
 */
export interface RunCoordinator {
  shouldRun(key: string, ttlMs: number): boolean | Promise<boolean>;
  onComplete?(key: string): void | Promise<void>;
}

/**
 * Options of {@link coordinator}: where the fires' locks live, as for every
 * form (`dir`, `driver`), and how their names start.
 *
 * @example
 * ```ts
 * const options: CoordinatorOptions = { driver: postgres({ connectionString: process.env.DATABASE_URL }) };
 * ```
 */
export interface CoordinatorOptions extends Pick<ExclusiveOptions, 'dir' | 'driver'> {
  /** Prepended to node-cron's key to name each fire's lock. Default: `'node-cron:'`. */
  prefix?: string;
}

const SHAPE: OptionsShape = {
  known: ['dir', 'driver', 'prefix'],
  aliases: { directory: 'dir' },
  notObject: 'coordinator() options must be an object',
  notAnOption: 'is not an option of coordinator()',
};

/** One fire this process won: its lock, kept until its lease has run out and its run has completed. */
interface Won {
  readonly lock: ExclusiveLock;
  leaseOver: boolean;
  completed: boolean;
}

/**
 * A node-cron 4 `RunCoordinator` that lets exactly one process of the fleet
 * run each fire of a `distributed` task: the first to take the fire's lock
 * (named `prefix + key`) runs it, and keeps the lock for the fire's `ttlMs`
 * (the task's `distributedLease`) or until its run completes, whichever is
 * later, so a process that asks late, after the run finished, is still told
 * `false`. Any driver: `posix` (default) on one host, `postgres()` across
 * hosts. Give every task a `name`, the same in every process: without one,
 * node-cron names it at random and the processes never meet.
 *
 * What it keeps: one held lock per fire for `ttlMs` (a lock file and its
 * descriptor; with `postgres()`, a database session), so keep
 * `distributedLease` short for frequent tasks (a few seconds is plenty for a
 * task every second; with postgres, every held fire is a connection). Lock
 * files are the driver's: a released one is kept open for reuse, at most 32
 * idle per process, and removed when the process exits. A process that
 * ends gives its held fires up at once (the kernel or server releases them).
 *
 * @example
 * ```ts
 * import cron from 'node-cron';
 * import { coordinator } from 'exclusive-process/node-cron';
 *
 * cron.schedule('* * * * *', sendDigest, { name: 'digest', distributed: true, runCoordinator: coordinator() });
 * cron.setRunCoordinator(coordinator({ driver: postgres() })); // for every distributed task
 * ```
 * @throws {InvalidArgumentError} at once, for bad options.
 */
export function coordinator(options?: CoordinatorOptions): RunCoordinator {
  const o = optionsRecord(options, SHAPE);
  const prefix = optionalString(o.prefix, 'prefix') ?? 'node-cron:';
  const where = { dir: o.dir as string | undefined, driver: o.driver as ExclusiveOptions['driver'] };
  parseOptions(where); // checked now, not at the first fire
  const won = new Map<string, Won>();

  const releaseWhenDone = (key: string, fire: Won): void => {
    if (!fire.leaseOver || !fire.completed || won.get(key) !== fire) return;
    won.delete(key);
    // Nothing to report to: a failed release (a lost database session) has freed the lock already.
    fire.lock.release().catch(() => {});
  };

  return {
    async shouldRun(key: string, ttlMs: number): Promise<boolean> {
      checkTtl(ttlMs);
      const lock = await Exclusive.acquire({ ...where, name: `${prefix}${key}`, skip: true });
      if (lock === null) return false;
      const fire: Won = { lock, leaseOver: false, completed: false };
      won.set(key, fire);
      // Unref'd: a lease never keeps the process alive; its end releases the lock anyway.
      setTimeout(() => {
        fire.leaseOver = true;
        releaseWhenDone(key, fire);
      }, ttlMs).unref();
      return true;
    },
    onComplete(key: string): void {
      const fire = won.get(key);
      if (fire === undefined) return;
      fire.completed = true;
      releaseWhenDone(key, fire);
    },
  };
}

function checkTtl(ttlMs: unknown): void {
  if (typeof ttlMs !== 'number' || !Number.isInteger(ttlMs) || ttlMs < 0 || ttlMs > MAX_WAIT_MS) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `shouldRun(key, ttlMs): ttlMs must be an integer from 0 to ${MAX_WAIT_MS} milliseconds (node-cron's distributedLease), got ${describe(ttlMs)}`
    );
  }
}
