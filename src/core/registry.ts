import { AsyncLocalStorage } from 'node:async_hooks';
import type { DriverLock, HolderRecord, LockDriver, LockMode } from '../drivers/types.js';
import { randomUUID } from '../shared/crypto.js';

/**
 * One lock of this thread, held or being acquired. Part of the shared
 * registry (see SharedRegistry): every copy of this package in the thread
 * reads and writes it, so its fields and their meaning are a contract.
 */
export interface Entry {
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
  /**
   * While a shared request's first try is in flight (an asynchronous driver's):
   * how to give up each shared caller that may not wait (`wait: false`) but
   * queued to join the hold that try may take. Told at the try's end.
   */
  sharedTry?: Set<() => void>;
  /** The mode of the current hold (absent: exclusive); a shared hold may be joined by other call chains of the thread. */
  mode?: LockMode;
  /** The limit of the current hold (absent: 1). A counted lock has one entry per slot this thread may hold (see entryFor's `slot`). */
  limit?: number;
}

/** What a call chain's re-entry store holds: any copy's handles, which all have these. */
export interface Handle {
  readonly held: boolean;
  readonly signal: AbortSignal;
}

/**
 * The registry and re-entry store shared by every copy of this package in a
 * thread, version 1 of a contract on `globalThis[Symbol.for('exclusive-process.registry.v1')]`:
 * `{ version, entries, chain }`. Fields may be added, never changed or
 * replaced; see docs/internals/lock-core.md ("The shared registry").
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

/** This thread's locks by key, and the handles each call chain holds (for re-entry). */
export const { entries: registry, chain } = sharedRegistry();

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
function keyOf(driver: LockDriver, resource: string, slot?: number): string {
  return slot === undefined ? baseKeyOf(driver, resource) : `${baseKeyOf(driver, resource)}\n#${slot}`;
}

function baseKeyOf(driver: LockDriver, resource: string): string {
  if (driver.registryKey !== undefined) return driver.registryKey(resource);
  if (driver.synchronous) return `${driver.kind}\n${resource}`;
  let id = asyncDriverIds.get(driver);
  if (id === undefined) asyncDriverIds.set(driver, (id = randomUUID()));
  return `${driver.kind}#${id}\n${resource}`;
}

/** Unique per driver object, also across copies of the package sharing the registry. */
const asyncDriverIds = new WeakMap<LockDriver, string>();

/** The entry of a lock this thread holds or is acquiring, without registering one (`slot`: the thread's n-th hold of a counted lock). */
export function findEntry(driver: LockDriver, resource: string, slot?: number): Entry | undefined {
  return registry.get(keyOf(driver, resource, slot));
}

/**
 * The entry of a lock, registered (free and unreserved) if there was none.
 * A counted lock has one per hold this thread may have at once (`slot` 0
 * to limit - 1: the n-th, not the driver's slot), so its calls take several
 * slots together instead of queueing behind each other.
 */
export function entryFor(driver: LockDriver, resource: string, slot?: number): Entry {
  const key = keyOf(driver, resource, slot);
  let entry = registry.get(key);
  if (entry === undefined) {
    entry = { key, resource, busy: false, lock: null, handles: 0, record: null, processWide: 0, lent: false, queue: new Set() };
    registry.set(key, entry);
  }
  return entry;
}

/**
 * Ends a caller's turn: a synchronous caller that borrowed the reservation
 * gives it back to the asynchronous caller still waiting (and that caller,
 * if it gave up first, leaves ending it to the borrower); otherwise unreserve.
 */
export function endTurn(entry: Entry): void {
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
    if (
      key.startsWith(`${driver.kind}\n`) ||
      key.startsWith(`${driver.kind}#`) ||
      (driver.registryKey !== undefined && key.startsWith(driver.registryKey(entry.resource)))
    )
      count++;
  }
  return count;
}
