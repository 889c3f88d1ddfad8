import { decorate } from './decorator.js'; // first: it loads reflect-metadata
import { describe } from '../shared/describe.js';
import { traceTarget } from '../core/debug.js';
import { acquireForProcess, acquireOrSkip, acquireOrSkipSync } from '../core/acquire.js';
import type { ExclusiveLock } from '../core/handle.js';
import { holderOf, holdersOf, runHolding } from '../core/hold.js';
import { requireSynchronous, target, type LockSettings, type Target } from '../core/settings.js';
import type { HolderRecord } from '../drivers/types.js';
import { InvalidArgumentError } from '../shared/errors.js';
import { validateName } from '../drivers/file/path.js';
import { parseHolderOptions, parseOptions, type ExclusiveOptions } from './options.js';
import type { ExclusiveApi, ExclusiveDecorator, HolderOptions, LockHolder, SkippingDecorator } from './types.js';
import { defaultName } from './wrap.js';
import { foreverSingleInstance, notify, splitInstanceOptions } from './single-instance.js';

/** Options of the forms that wrap no function: `async` describes a function, so there it is refused, not ignored. */
function parseLockOptions(options: unknown, form: string): LockSettings {
  const settings = parseOptions(options);
  if (settings.async !== undefined) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.async applies to exclusive(fn) and @Exclusive only, not to ${form}`);
  }
  return settings;
}

/** The target of a form that wraps no function: the given name, else the calling file's (logged). */
function targetOf(settings: LockSettings, form: string): Target {
  return traceTarget(target(settings, settings.name ?? defaultName(form)));
}

function forever(options?: ExclusiveOptions): ExclusiveLock | null {
  const { rest, instance } = splitInstanceOptions(options);
  const settings = parseLockOptions(rest, 'Exclusive.forever()');
  requireSynchronous(settings, 'Exclusive.forever()');
  const t = targetOf(settings, 'Exclusive.forever()');
  return instance === undefined ? acquireForProcess(t) : foreverSingleInstance(t, instance);
}

async function run<R>(
  ...args: [ExclusiveOptions | undefined, (lock: ExclusiveLock) => R] | [(lock: ExclusiveLock) => R]
): Promise<Awaited<R> | undefined> {
  // `run(fn)`: a function alone is the callback (options are never a function).
  const [options, fn] = args.length === 1 && typeof args[0] === 'function' ? [undefined, args[0]] : args;
  if (typeof fn !== 'function') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `Exclusive.run(options, fn) needs a function, got ${describe(fn)}`);
  }
  const settings = parseLockOptions(options, 'Exclusive.run() (it awaits what fn returns)');
  const t = targetOf(settings, 'Exclusive.run()');
  const lock = await acquireOrSkip(t);
  if (lock === null) return undefined; // skipped: held elsewhere
  try {
    return await runHolding(lock, t, () => fn(lock));
  } finally {
    await lock.release();
  }
}

function lock(options?: ExclusiveOptions): ExclusiveLock | null {
  const settings = parseLockOptions(options, 'Exclusive.lock()');
  requireSynchronous(settings, 'Exclusive.lock()');
  const t = targetOf(settings, 'Exclusive.lock()');
  return acquireOrSkipSync(t);
}

function acquireLock(options?: ExclusiveOptions): Promise<ExclusiveLock | null> {
  const settings = parseLockOptions(options, 'Exclusive.acquire()');
  const t = targetOf(settings, 'Exclusive.acquire()');
  return acquireOrSkip(t);
}

function holder(name: string, options?: HolderOptions): LockHolder | null | Promise<LockHolder | null> {
  validateName(name, 'name');
  const settings = parseHolderOptions(options);
  const t = target(settings, name);
  const describeHolder = (record: HolderRecord | null): LockHolder | null =>
    record === null ? null : { ...record, name, lockfile: t.resource, driver: settings.driver.kind };
  const record = holderOf(t);
  // An asynchronous driver always answers with a promise (as its type says),
  // also when this thread holds the lock and knows the record at once.
  if (!settings.driver.synchronous) return Promise.resolve(record).then(describeHolder);
  return record instanceof Promise ? record.then(describeHolder) : describeHolder(record);
}

function holders(name: string, options?: HolderOptions): LockHolder[] | Promise<LockHolder[]> {
  validateName(name, 'name');
  const settings = parseHolderOptions(options);
  const t = target(settings, name);
  const describeAll = (records: HolderRecord[]): LockHolder[] =>
    records.map((record) => ({ ...record, name, mode: record.mode ?? 'exclusive', lockfile: t.resource, driver: settings.driver.kind }));
  const records = holdersOf(t);
  if (!settings.driver.synchronous) return Promise.resolve(records).then(describeAll);
  return records instanceof Promise ? records.then(describeAll) : describeAll(records);
}

/**
 * Makes code exclusive: as a method decorator (`@Exclusive()`), or through
 * its static helpers `forever`, `run`, `lock`, `acquire`, `holder` and `notify`.
 *
 * @example
 * ```ts
 * import { Exclusive } from 'exclusive-process';
 * Exclusive.forever({ die: true });
 * ```
 */
export const Exclusive: ExclusiveApi = Object.assign(
  decorate as ExclusiveDecorator & ((options?: ExclusiveOptions) => ExclusiveDecorator & SkippingDecorator),
  {
    forever: forever as ExclusiveApi['forever'],
    run: run,
    lock: lock as ExclusiveApi['lock'],
    acquire: acquireLock as ExclusiveApi['acquire'],
    holder: holder as ExclusiveApi['holder'],
    notify,
    holders: holders as ExclusiveApi['holders'],
  }
);
