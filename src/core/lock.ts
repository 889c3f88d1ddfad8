import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { writeSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { CannotAcquireLock, InvalidArgumentError, LockDriverError, NotHoldingError, type ConflictDetails } from '../shared/errors.js';
import { cleanupOnSignals, registerCleanup, withoutOurSignalHandlers } from './exit.js';
import { isThisProcess, recordForThisProcess } from '../shared/holder-record.js';
import type { LockSettings } from '../api/options.js';
import type { DriverLock, HolderRecord, LockDriver } from '../drivers/types.js';

/**
 * The shared lock logic every form of the API goes through, written once for
 * all drivers:
 * - an in-process registry per lock (driver kind and resource; one per
 *   name for the posix and portable drivers, which exclude each other), shared by every
 *   copy of this package in the thread, so concurrent calls in one thread
 *   queue here and only one of them talks to the OS (100 waiters cost one OS
 *   waiter, and a reused file descriptor is never locked twice);
 * - reentrancy for the call chain that holds a lock (AsyncLocalStorage), and
 *   for the whole process after `forever()`;
 * - the wait policy: the driver's native wait, or retries woken by the
 *   driver's change notification with a slow poll for crashed holders;
 * - the conflict policy (`die` or `CannotAcquireLock`), in one place.
 */

/**
 * One lock of this thread, held or being acquired. Part of the shared
 * registry (see SharedRegistry): every copy of this package in the thread
 * reads and writes it, so its fields and their meaning are a contract.
 */
interface Entry {
  /** The registry key: the driver's kind and the resource (see keyOf). */
  readonly key: string;
  /** Where the driver of the holder (or of the first caller) locates the lock: posix and portable callers of a name share an entry. */
  resource: string;
  /** The kind of the driver holding `lock` (absent: the kind in `key`), for a re-entry through another driver kind. */
  kind?: string;
  /** True from the moment one caller starts acquiring until it releases (or gives up). */
  busy: boolean;
  lock: DriverLock | null;
  /**
   * Unreleased handles of the current hold: the first acquisition plus its
   * re-entries. The lock is given up when the last is released, so a call
   * that re-entered keeps it even if it outlives the call it re-entered.
   */
  handles: number;
  /** Our own holder record, for `holder()` while we hold it. */
  record: HolderRecord | null;
  /** Unreleased `forever()` handles: while there is one, every acquisition in this thread re-enters. */
  processWide: number;
  /**
   * True while a synchronous caller holds (or waits for) the lock on loan
   * from an asynchronous caller that reserved it and is still polling the
   * OS. Whichever of the two finishes second ends the reservation (endTurn).
   */
  lent: boolean;
  /** In-process callers waiting for `busy` to clear, oldest first. */
  readonly queue: Set<() => void>;
}

/** What a call chain's re-entry store holds: any copy's handles, which all have these. */
interface Handle {
  readonly held: boolean;
  readonly signal: AbortSignal;
}

/**
 * The registry and the re-entry store, shared by every copy of this package
 * loaded in one thread (npm link, two versions nested in node_modules, a
 * bundle next to the package), so that they exclude and re-enter each other
 * as one: otherwise a copy's blocking wait on a lock another copy holds in
 * the same thread would never end, and a Windows mutex, which its owning
 * thread may take again, would have two holders.
 *
 * The contract, version 1, on `globalThis[Symbol.for('exclusive-process.registry.v1')]`
 * (globalThis is per thread): `{ version, entries, chain }`, where `version`
 * is the revision of the copy that created it (1 here), and
 * `entries` maps `<driver kind>\n<resource>` (asynchronous drivers:
 * `<driver kind>#<driver object's id>\n<resource>`; the posix and portable
 * drivers, which exclude each other on a name: `file\n<the name's .lock path>`,
 * see `LockDriver.registryKey`) to an Entry and `chain` is the
 * AsyncLocalStorage of the handles (`held`, `signal`) a call chain holds, by
 * entry. Only the caller that set `busy` talks to the OS for an entry (or a
 * synchronous caller it lent it to, see `lent`); releasing the last handle
 * releases `lock` and hands `busy` to the oldest `queue` callback, or clears
 * it and deletes the entry. Later revisions may add fields whose absence means
 * the old behaviour; they must keep these with these meanings, and never
 * replace the object. An incompatible change would need a new key, and
 * would give up sharing with copies of this one.
 */
interface SharedRegistry {
  readonly version: number;
  readonly entries: Map<string, Entry>;
  readonly chain: AsyncLocalStorage<ReadonlyMap<Entry, readonly Handle[]>>;
}

const SHARED = Symbol.for('exclusive-process.registry.v1');

function sharedRegistry(): SharedRegistry {
  const global = globalThis as { [SHARED]?: SharedRegistry };
  const found = global[SHARED];
  if (found !== undefined) return found;
  const created: SharedRegistry = { version: 1, entries: new Map(), chain: new AsyncLocalStorage() };
  Object.defineProperty(global, SHARED, { value: created, enumerable: false, writable: false, configurable: false });
  return created;
}

const { entries: registry, chain } = sharedRegistry();

/**
 * The registry key. A synchronous driver's locks are this thread's own OS
 * state (a file description, a mutex), so its entries go by kind and
 * resource: two copies' drivers meet, and a blocking wait never waits for
 * this thread. An asynchronous driver's lock lives in a server session per
 * driver object, which the server itself excludes: its entries go by driver
 * object, so two drivers (two pools, or a test's second client) contend at
 * the server as two processes would. Drivers whose locks exclude another
 * kind's (posix and portable) give their own key, the same for one name.
 */
function keyOf(driver: LockDriver, resource: string): string {
  if (driver.registryKey !== undefined) return driver.registryKey(resource);
  if (driver.synchronous) return `${driver.kind}\n${resource}`;
  let id = asyncDriverIds.get(driver);
  if (id === undefined) asyncDriverIds.set(driver, (id = randomUUID()));
  return `${driver.kind}#${id}\n${resource}`;
}

/** Unique per driver object, also across copies of the package sharing the registry. */
const asyncDriverIds = new WeakMap<LockDriver, string>();

/**
 * Waits between retries, doubling from the first to the max. Asynchronous
 * waiters are woken by the driver's change notification, so their poll only
 * finds holders that died without a word; a blocked thread has only its poll.
 */
const POLL_FIRST_MS = 2;
const POLL_MAX_MS = 100;
const SYNC_POLL_MAX_MS = 10;
/** What the polls of all asynchronous waits of a thread may add up to, watched or not (see pollMaxMs). */
const WATCHED_POLLS_PER_SECOND = 200;
const UNWATCHED_POLLS_PER_SECOND = 1000;
/** How often a wait whose watch failed tries again. */
const WATCH_RETRY_MS = 1000;

/**
 * A held lock. Returned by `Exclusive.forever()`, `Exclusive.lock()`,
 * `Exclusive.acquire()` and passed to `Exclusive.run()` callbacks; works with
 * `using` and `await using`.
 *
 * @example
 * ```ts
 * await using lock = await Exclusive.acquire({ name: 'report', wait: 5_000 });
 * console.log(lock.name, lock.lockfile);
 * ```
 */
export class ExclusiveLock implements Disposable, AsyncDisposable {
  /** The lock's name. */
  readonly name: string;
  /** Where the lock lives: the lock file (or mutex name, or advisory key). */
  readonly lockfile: string;
  /** The driver holding it: `'posix'`, `'windows'`, `'portable'`, `'postgres'`... */
  readonly driver: string;
  /** True when the previous holder died holding the lock (Windows `WAIT_ABANDONED`): the data it guarded may be half-written. */
  readonly abandoned: boolean;
  /** A number that grows with every acquisition, where the driver provides one (postgres); otherwise undefined. */
  readonly fencingToken: bigint | undefined;
  // Made on first use of `signal` (or when the driver can lose the lock):
  // most holders never look, and an AbortController per acquisition is a
  // measurable part of a lock's cost.
  #controller: AbortController | undefined;
  #release: (() => void | Promise<void>) | undefined;
  #released: Promise<void> | undefined;
  /** Set when the release failed synchronously, for `[Symbol.dispose]` to throw. */
  #failure: { error: unknown } | undefined;

  /** @internal */
  constructor(name: string, driver: string, entry: Entry, release: () => void | Promise<void>) {
    this.name = name;
    this.lockfile = entry.resource;
    this.driver = driver;
    this.abandoned = entry.lock?.abandoned === true;
    this.fencingToken = entry.lock?.fencingToken;
    this.#release = release;
    const lost = entry.lock?.lost;
    if (lost !== undefined) {
      const onLost = (): void => this.#abort(lost.reason);
      if (lost.aborted) onLost();
      else lost.addEventListener('abort', onLost, { once: true });
    }
  }

  /** Aborted when this handle is released, or when the driver learns the lock was lost (reason: a `LockLostError`). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#release === undefined) this.#controller.abort(this.#releasedReason());
    }
    return this.#controller.signal;
  }

  #abort(reason: unknown): void {
    (this.#controller ??= new AbortController()).abort(reason);
  }

  #releasedReason(): Error {
    return new Error(`The lock '${this.name}' was released.`);
  }

  /** True until `release()` is called. */
  get held(): boolean {
    return this.#release !== undefined;
  }

  /**
   * Releases the lock. Idempotent. Synchronous drivers (posix, windows,
   * portable) have released when this returns; the promise is for drivers
   * that talk to a server.
   */
  release(): Promise<void> {
    if (this.#released === undefined) {
      const release = this.#release!;
      this.#release = undefined;
      if (this.#controller !== undefined && !this.#controller.signal.aborted) this.#controller.abort(this.#releasedReason());
      try {
        const result = release();
        this.#released = result instanceof Promise ? result : Promise.resolve();
      } catch (error) {
        this.#failure = { error };
        this.#released = Promise.reject(error);
      }
    }
    return this.#released;
  }

  /**
   * Releases the lock at the end of a `using` block. A synchronous driver's
   * failure to release is thrown here; use `await using` for the others.
   */
  [Symbol.dispose](): void {
    const released = this.release();
    if (this.#failure === undefined) return;
    released.catch(() => {}); // reported by the throw instead
    throw this.#failure.error;
  }

  /** Releases the lock at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/** The entry of a lock this thread holds or is acquiring, without registering one. */
function findEntry(driver: LockDriver, resource: string): Entry | undefined {
  return registry.get(keyOf(driver, resource));
}

function entryFor(driver: LockDriver, resource: string): Entry {
  const key = keyOf(driver, resource);
  let entry = registry.get(key);
  if (entry === undefined) {
    entry = { key, resource, busy: false, lock: null, handles: 0, record: null, processWide: 0, lent: false, queue: new Set() };
    registry.set(key, entry);
  }
  return entry;
}

/** One more handle on a lock held through the caller's call chain (or `forever()`). */
function reenter(name: string, driver: LockDriver, entry: Entry, processWide: boolean): ExclusiveLock {
  entry.handles++;
  return handle(name, entry.kind ?? driver.kind, entry, processWide);
}

/**
 * A handle whose release gives up its share of the hold; a `forever()`
 * handle also its share of the process-wide re-entry, which therefore ends
 * with it, not with the hold (that may be a run() it was taken inside).
 */
function handle(name: string, kind: string, entry: Entry, processWide: boolean): ExclusiveLock {
  if (!processWide) return new ExclusiveLock(name, kind, entry, () => letGo(entry));
  entry.processWide++;
  return new ExclusiveLock(name, kind, entry, () => {
    entry.processWide--;
    return letGo(entry);
  });
}

/**
 * True when this call chain holds the lock now: one of its handles for the
 * entry is unreleased. A continuation that outlived its holds (a timer set
 * while holding) has only released handles, and must not re-enter a later
 * holder's hold.
 */
function isReentry(entry: Entry): boolean {
  return entry.lock !== null && (entry.processWide > 0 || heldHandle(entry) !== undefined);
}

/** The innermost unreleased handle this call chain has for `entry`. */
function heldHandle(entry: Entry): Handle | undefined {
  return chain.getStore()?.get(entry)?.findLast((handle) => handle.held);
}

function hold({ name, resource, settings: { driver } }: Target, entry: Entry, lock: DriverLock, record: HolderRecord, processWide: boolean): ExclusiveLock {
  entry.lock = lock;
  entry.kind = driver.kind;
  entry.resource = resource;
  entry.handles = 1;
  entry.record = lock.details === undefined ? record : { ...record, details: lock.details };
  registerCleanup(driver);
  const held = handle(name, driver.kind, entry, processWide);
  if (lock.descriptor !== undefined) descriptors.set(held, lock.descriptor);
  return held;
}

/** The descriptors of held locks that live on one (see `DriverLock.descriptor`). */
const descriptors = new WeakMap<ExclusiveLock, number>();

/** The open file descriptor holding `lock` (posix), for the `exclusive` command to hand to its command; undefined otherwise. */
export function lockDescriptor(lock: ExclusiveLock): number | undefined {
  return lock.held ? descriptors.get(lock) : undefined;
}

/** Releases one handle; the last one gives the lock up. */
function letGo(entry: Entry): void | Promise<void> {
  if (--entry.handles > 0) return;
  const lock = entry.lock!;
  entry.lock = null;
  entry.record = null;
  const done = (): void => endTurn(entry);
  let result: void | Promise<void>;
  try {
    result = lock.release();
  } catch (error) {
    done(); // a failed release must not leave the reservation (and our queue) stuck
    throw error;
  }
  if (result instanceof Promise) return result.finally(done);
  done();
}

/**
 * Ends a caller's turn: a synchronous caller that borrowed the reservation
 * gives it back to the asynchronous caller still waiting (and that caller,
 * if it gave up first, leaves ending it to the borrower); otherwise unreserve.
 */
function endTurn(entry: Entry): void {
  if (entry.lent) entry.lent = false;
  else unreserve(entry);
}

/**
 * Hands the reservation to the oldest in-process waiter (first come, first
 * served), or frees it; a free entry leaves the registry, so a process that
 * uses many names (one per user...) does not keep one for each.
 */
function unreserve(entry: Entry): void {
  const [next] = entry.queue;
  if (next === undefined) {
    entry.busy = false;
    if (entry.lock === null && registry.get(entry.key) === entry) registry.delete(entry.key);
  } else {
    entry.queue.delete(next);
    next();
  }
}

/** How many locks of `driver`'s kind this thread's registry tracks (held, or being acquired); for tests. */
export function registeredLocks(driver: LockDriver): number {
  let count = 0;
  for (const [key, entry] of registry) {
    if (key.startsWith(`${driver.kind}\n`) || key.startsWith(`${driver.kind}#`) || key === driver.registryKey?.(entry.resource)) count++;
  }
  return count;
}

/** Settings plus the resolved name and resource: what one acquisition needs. */
export interface Target {
  readonly settings: LockSettings;
  readonly name: string;
  readonly resource: string;
}

/** Resolves where the lock lives (this can fail: bad directory...). */
export function target(settings: LockSettings, name: string): Target {
  return { settings, name, resource: settings.driver.locate(name, settings.dir) };
}

/**
 * Throws unless `settings` suit a synchronous form (`lock()`, `forever()`,
 * sync functions; `what` names it): the driver must be synchronous, and a
 * `signal` that has not aborted yet cannot stop a wait, since no JavaScript
 * (no timer, no abort) runs in a thread blocked in a synchronous wait. An
 * aborted signal is accepted: the call throws its reason, as `acquire()` does.
 */
export function requireSynchronous(settings: LockSettings, what: string): void {
  const { driver, signal } = settings;
  if (!driver.synchronous) {
    throw new LockDriverError('ERR_DRIVER_UNSUPPORTED',
      `The ${driver.kind} driver is asynchronous: ${what} needs a synchronous driver; use Exclusive.acquire() or an async function.`);
  }
  if (signal !== undefined && !signal.aborted && settings.waitMs > 0) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE',
      `options.signal cannot stop the wait of ${what}: a synchronous wait blocks the thread, so the signal would never be seen. ` +
        'Use Exclusive.acquire() or an async function to wait with a signal, or a synchronous wait without one.');
  }
}

/**
 * Takes the lock synchronously, waiting (blocking this thread) up to
 * `waitMs`. On conflict applies `die` or throws CannotAcquireLock.
 * `processWide` (forever()): every acquisition in this thread re-enters
 * until this handle is released.
 */
export function acquireSync(t: Target, processWide = false): ExclusiveLock {
  const { settings, name, resource } = t;
  const { driver } = settings;
  const found = findEntry(driver, resource);
  if (found !== undefined && isReentry(found)) return reenter(name, driver, found, processWide);
  if (settings.signal?.aborted) throw settings.signal.reason;
  // Held by another call chain of this thread (or waited for on another
  // thread, which could take it while we block): a blocking wait could never
  // see it released, so this is a conflict whatever `wait` says. A caller
  // that only polls for another process lends us its turn instead.
  if (found?.busy && !canBorrow(found, driver)) {
    return conflictSync(t, found.lock !== null ? found.record : undefined, found.lock !== null ? 'held' : 'waiting');
  }
  // Reserved (or borrowed) for the whole wait: no JavaScript runs in this
  // thread meanwhile, and the entry must stay registered for the hold to be seen.
  const entry = found ?? entryFor(driver, resource);
  if (entry.busy) entry.lent = true;
  else entry.busy = true;
  let record!: HolderRecord; // this attempt's: `since` is when it succeeded
  const attempt = (block: boolean): DriverLock | null => {
    record = recordForThisProcess(name, settings.command);
    return block ? driver.waitLockSync!(resource, record) : (driver.tryLock(resource, record) as DriverLock | null);
  };
  let lock: DriverLock | null;
  let ours = false;
  try {
    const deadline = performance.now() + settings.waitMs;
    lock = attempt(false);
    // Held by this thread under another path to the same file: same as held by another chain.
    if (lock === null && settings.waitMs > 0) ours = driver.heldByThisThread?.(resource) === true;
    if (lock === null && settings.waitMs > 0 && !ours) lock = withoutOurSignalHandlers(() => waitSync(attempt, settings, deadline));
  } catch (error) {
    endTurn(entry);
    throw error;
  }
  if (lock !== null) return hold(t, entry, lock, record, processWide);
  endTurn(entry);
  // No signal can have aborted meanwhile: one that could is refused before a wait (requireSynchronous).
  return conflictSync(t, undefined, ours ? 'other-path' : undefined);
}

/**
 * True when a synchronous caller may take the lock over from the
 * asynchronous caller that reserved it: nothing of this thread holds it, and
 * that caller only polls the OS from this thread, so it cannot act while we
 * block, and its attempts wait while we hold (see pausedWhileLent). A native
 * waiter (Windows) waits on another thread, which could take the lock while
 * this one blocks for it: never borrowed from.
 */
function canBorrow(entry: Entry, driver: LockDriver): boolean {
  return entry.lock === null && !entry.lent && driver.waitLock === undefined;
}

/**
 * The driver as the caller holding the reservation sees it: no attempt while
 * a synchronous caller holds the lock on loan. An attempt then could even
 * succeed: flock on the open file description that holds the lock does.
 */
function pausedWhileLent(driver: LockDriver, entry: Entry): LockDriver {
  return {
    kind: driver.kind,
    synchronous: driver.synchronous,
    locate: (name, dir) => driver.locate(name, dir),
    holder: (resource, name) => driver.holder(resource, name),
    tryLock: (resource, record, signal) => (entry.lock !== null ? null : driver.tryLock(resource, record, signal)),
    ...(driver.watch && { watch: (resource: string, onChange: () => void) => driver.watch!(resource, onChange) }),
  };
}

/**
 * A synchronous wait: no JavaScript runs in this thread until it returns,
 * signal handlers and abort signals included (see requireSynchronous). The
 * main thread waiting for ever blocks in the driver: the kernel hands the
 * lock over at once. Otherwise it polls, sleeping in Atomics.wait, which
 * `worker.terminate()` interrupts; a worker blocked in the kernel (flock)
 * could not be stopped, and `process.exit()`, which stops every worker
 * first, would hang until the lock came.
 */
function waitSync(attempt: (block: boolean) => DriverLock | null, settings: LockSettings, deadline: number): DriverLock | null {
  if (settings.waitMs === Infinity && isMainThread && settings.driver.waitLockSync) return attempt(true);
  for (let delay = POLL_FIRST_MS; ; delay = Math.min(delay * 2, SYNC_POLL_MAX_MS)) {
    const left = deadline - performance.now();
    if (left <= 0) return null;
    sleepSync(Math.min(delay, left));
    const lock = attempt(false);
    if (lock !== null) return lock;
  }
}

/**
 * Takes the lock, waiting up to `waitMs` (in-process waiters queue; the
 * first one waits on the OS). On conflict applies `die` or throws
 * CannotAcquireLock; an aborted `signal` rejects with its reason.
 */
export async function acquire(t: Target): Promise<ExclusiveLock> {
  const { settings, name, resource } = t;
  const { driver, signal } = settings;
  const found = findEntry(driver, resource);
  if (found !== undefined && isReentry(found)) return reenter(name, driver, found, false);
  signal?.throwIfAborted();
  const entry = found ?? entryFor(driver, resource);
  const deadline = performance.now() + settings.waitMs;
  if (!entry.busy) entry.busy = true;
  else if (settings.waitMs === 0 || !(await turn(entry, deadline, signal))) {
    signal?.throwIfAborted();
    // Held here, or only waited for here: then the driver knows the holder.
    return conflict(t, entry.lock !== null ? entry.record : undefined);
  }
  let lock: DriverLock | null = null;
  let record = recordForThisProcess(name, settings.command);
  try {
    // Not while a synchronous caller holds it on loan (see pausedWhileLent).
    const tried = entry.lock !== null ? null : driver.tryLock(resource, record, signal);
    lock = tried instanceof Promise ? await tried : tried; // no extra tick for synchronous drivers
    if (lock === null && settings.waitMs > 0) {
      record = recordForThisProcess(name, settings.command);
      lock = await (driver.waitLock ? nativeWait(driver, resource, record, deadline, signal) : pollWait(pausedWhileLent(driver, entry), resource, record, deadline, signal));
    }
  } catch (error) {
    endTurn(entry);
    throw error;
  }
  if (lock === null) {
    endTurn(entry);
    signal?.throwIfAborted();
    return conflict(t, entry.lock !== null ? entry.record : undefined);
  }
  return hold(t, entry, lock, record, false);
}

/** Waits for this thread's current holder to let go: true when the reservation passed to us, false at the deadline or abort. */
function turn(entry: Entry, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (result: boolean): void => {
      entry.queue.delete(wake);
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      resolve(result);
    };
    const wake = (): void => done(true);
    const abort = (): void => done(false);
    entry.queue.add(wake);
    const timer = deadline === Infinity ? undefined : setTimeout(abort, Math.max(0, deadline - performance.now()));
    signal?.addEventListener('abort', abort, { once: true });
  });
}

async function nativeWait(driver: LockDriver, resource: string, record: HolderRecord, deadline: number, signal: AbortSignal | undefined): Promise<DriverLock | null> {
  // AbortSignal.timeout() takes whole milliseconds only.
  const left = deadline === Infinity ? undefined : Math.max(0, Math.ceil(deadline - performance.now()));
  const timeout = left === undefined ? undefined : AbortSignal.timeout(left);
  const stop = signal && timeout ? AbortSignal.any([signal, timeout]) : (signal ?? timeout ?? new AbortController().signal);
  return driver.waitLock!(resource, record, stop, left);
}

/**
 * Retries the lock whenever the driver reports a change (a release wakes us
 * within a millisecond), and on a poll backing off to pollMaxMs(), which is
 * what finds a holder that died without a word (`kill -9`). The watch is set
 * up once for the whole wait, and again only after it fired (the lock file
 * may have been replaced) or when it could not be set up: waiting on many
 * names costs one watch each and a bounded poll, not a new watch per poll.
 */
async function pollWait(driver: LockDriver, resource: string, record: HolderRecord, deadline: number, signal: AbortSignal | undefined): Promise<DriverLock | null> {
  let wake = (): void => {};
  let unwatch: (() => void) | undefined;
  let changed = true;
  let watchAgainAt = 0;
  const onChange = (): void => {
    changed = true;
    wake();
  };
  const rewatch = (): void => {
    changed = false;
    unwatch?.();
    unwatch = driver.watch?.(resource, onChange);
    // Where watching fails every time (no inotify instance left), a failed watch per poll would cost more than the poll.
    if (unwatch === undefined) watchAgainAt = performance.now() + WATCH_RETRY_MS;
  };
  const onAbort = (): void => wake();
  signal?.addEventListener('abort', onAbort, { once: true });
  pollingWaits++;
  try {
    for (let delay = POLL_FIRST_MS; ;) {
      const woken = new Promise<void>((resolve) => (wake = resolve));
      // Watch before trying, so a release between the try and the sleep still wakes us.
      const afterChange = changed;
      if (changed || (unwatch === undefined && performance.now() >= watchAgainAt)) rewatch();
      const lock = await driver.tryLock(resource, { ...record, since: new Date() }, signal);
      if (lock !== null) return lock;
      if (afterChange && unwatch === undefined && driver.watch !== undefined) {
        // The change may have been the file being replaced, not there to watch a moment ago: watch it now, and try again under the watch.
        rewatch();
        if (unwatch !== undefined) continue;
      }
      const left = deadline - performance.now();
      if (left <= 0 || signal?.aborted) return null;
      const timer = setTimeout(wake, Math.min(delay, left));
      await woken;
      clearTimeout(timer);
      delay = Math.min(delay * 2, pollMaxMs(unwatch === undefined ? UNWATCHED_POLLS_PER_SECOND : WATCHED_POLLS_PER_SECOND));
    }
  } finally {
    pollingWaits--;
    unwatch?.();
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Asynchronous waits of this thread in pollWait(), for the poll budget. */
let pollingWaits = 0;

/**
 * The longest poll of a wait: POLL_MAX_MS, stretched when many names wait at
 * once so that all their polls together stay near `pollsPerSecond` (each
 * poll is a failed lock attempt, some microseconds). A watched wait's poll
 * only finds holders that died without a word; an unwatched one's (no
 * inotify left, a network file system) finds every release, so it may poll
 * more.
 */
function pollMaxMs(pollsPerSecond: number): number {
  return Math.max(POLL_MAX_MS, (pollingWaits * 1000) / pollsPerSecond);
}

/** Blocks the thread for `ms` without burning CPU; `worker.terminate()` interrupts it. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs `fn` as the holder of `entry`'s lock, so nested acquisitions in its call chain re-enter. */
export function runHolding<R>(lock: ExclusiveLock, t: Target, fn: () => R): R {
  const entry = findEntry(t.settings.driver, t.resource);
  if (entry === undefined || !lock.held) return fn(); // released already: nothing to re-enter
  const held = chain.getStore();
  const handles = held?.get(entry) ?? [];
  if (handles.at(-1) === lock) return fn();
  return chain.run(new Map(held).set(entry, [...handles, lock]), fn);
}

/**
 * A signal that aborts when any lock held by the current call chain is lost
 * or released; throws NotHoldingError outside such a chain.
 */
export function chainSignal(): AbortSignal {
  const held = chain.getStore();
  if (held === undefined || held.size === 0) {
    throw new NotHoldingError('exclusive.signal() was called outside an exclusive function, method or Exclusive.run() callback.');
  }
  // Per lock, the innermost handle still held (else the last, already released: its signal has aborted).
  const signals = [...held.values()].map((handles) => (handles.findLast((handle) => handle.held) ?? handles.at(-1)!).signal);
  return signals.length === 1 ? signals[0]! : AbortSignal.any(signals);
}

/** The holder as this thread knows it (we hold it), or as the driver reports it. */
export function holderOf(t: Target): HolderRecord | null | Promise<HolderRecord | null> {
  // A lookup, not entryFor(): asking about a name must not add it to the registry.
  const record = findEntry(t.settings.driver, t.resource)?.record;
  if (record) return record;
  return t.settings.driver.holder(t.resource, t.name);
}

/** Takes the lock for the whole process (forever()): re-entered by every acquisition in this thread while the handle is held, cleaned up on signals too. */
export function acquireForProcess(t: Target): ExclusiveLock {
  const lock = acquireSync(t, true);
  cleanupOnSignals();
  return lock;
}

/** For a synchronous wait refused at once: what would make it deadlock (see ConflictDetails). */
type Deadlock = ConflictDetails['deadlock'];

/** A conflict; `holder` when this thread knows it (it holds the lock), else undefined: the driver is asked. */
async function conflict(t: Target, holder: HolderRecord | null | undefined): Promise<never> {
  return conflictWith(t, holder !== undefined ? holder : await t.settings.driver.holder(t.resource, t.name), undefined);
}

/** {@link conflict} for synchronous drivers, which answer `holder()` synchronously. */
function conflictSync(t: Target, holder: HolderRecord | null | undefined, deadlock: Deadlock): never {
  return conflictWith(t, holder !== undefined ? holder : (t.settings.driver.holder(t.resource, t.name) as HolderRecord | null), deadlock);
}

/**
 * The one conflict policy. Which case it is: a refused synchronous wait
 * would deadlock; any other failed wait ran out; without a wait, the holder
 * is this process or another. `die` prints the case's message and exits with
 * `exitCode`, but only when the holder is not this process: another call of
 * this process (a server's second request) gets CannotAcquireLock, as
 * without `die`, rather than ending the process that holds the lock.
 */
function conflictWith(t: Target, holder: HolderRecord | null, deadlock: Deadlock): never {
  const { settings } = t;
  const ours = holder !== null && isThisProcess(holder);
  const reason = deadlock !== undefined && settings.waitMs > 0 ? 'would-deadlock'
    : settings.waitMs > 0 ? 'timed-out'
    : ours ? 'held-in-process' : 'held-elsewhere';
  const details: ConflictDetails = {
    reason,
    holder: holder && { ...holder }, // a copy: this thread's own record is shared with holder()
    ...(reason === 'timed-out' && { waitedMs: settings.waitMs }),
    ...((reason === 'would-deadlock' || reason === 'held-in-process') && deadlock !== undefined && { deadlock }),
  };
  const error = new CannotAcquireLock(t.name, t.resource, holder?.pid ?? null, details);
  if (settings.die && !ours) {
    writeSync(2, `${error.message}\n`);
    process.exit(settings.exitCode);
  }
  throw error;
}
