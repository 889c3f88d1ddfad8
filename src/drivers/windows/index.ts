import { createHash } from 'node:crypto';
import { closeSync, lstatSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { LockDriverError, LockFileError } from '../../shared/errors.js';
import { encodeRecord } from '../../shared/holder-record.js';
import { chosenDirectory, LOCK_FILE_SUFFIX, lockDirectory, lockFileName, lockNamesIn, systemLockDirectory } from '../file/path.js';
import { isRunning } from '../../shared/process-identity.js';
import { oneOf, optionsRecord, type OptionsShape } from '../../shared/validate.js';
import { openLockFile, readRecordAt, writeRecord } from '../file/lock-file.js';
import type { DriverLock, HolderRecord, SyncLockDriver } from '../types.js';
import {
  ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, ERROR_INVALID_HANDLE, INFINITE, loadKernel32, WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT,
} from '../../native/kernel32.js';
import { Waiter } from './waiter-pool.js';
import { evictIdle } from '../file/idle-cache.js';

/**
 * The Windows driver: a kernel named mutex per lock (CreateMutexW,
 * WaitForSingleObject, ReleaseMutex through ffi-rs). Windows releases a
 * mutex whose owner dies, however it dies, and tells the next owner
 * (WAIT_ABANDONED, reported as `lock.abandoned`).
 *
 * A mutex belongs to the thread that acquired it (ReleaseMutex elsewhere
 * fails, CloseHandle does not release), so:
 * - `tryLock` acquires on the calling thread (WaitForSingleObject, 0 ms) and
 *   `release` runs on it too: the lock handle cannot leave its thread;
 * - `waitLock` waits on a dedicated waiter thread (worker_threads, never
 *   libuv's pool, where blocking waits would stall `fs` and `dns`) that
 *   then holds the mutex until `release` asks it, synchronously.
 *
 * The holder record goes to a small info file beside where the lock file
 * would be (`exclusive-process.<name>.mutex` in the lock directory), written
 * after acquiring; it serves `holder()` and messages only.
 */

/**
 * Namespace of the mutexes: `'local'` (this logon session) or `'global'`
 * (all sessions: services, other users, Remote Desktop). Default: `'local'`.
 *
 * @example
 * ```ts
 * const scope: WindowsScope = process.env.ALL_SESSIONS ? 'global' : 'local';
 * ```
 */
export type WindowsScope = 'local' | 'global';

/**
 * Options of {@link windows}.
 *
 * @example
 * ```ts
 * const options: WindowsDriverOptions = { scope: 'global' };
 * Exclusive.forever({ name: 'updater', driver: windows(options) });
 * ```
 */
export interface WindowsDriverOptions {
  /**
   * `'local'` puts the mutexes in the session's `Local\` namespace;
   * `'global'` in `Global\`, shared by every session (services, other users,
   * Remote Desktop). Creating `Global\` objects needs SeCreateGlobalPrivilege
   * (services and elevated administrators have it): without it the lock
   * throws a LockFileError with code `'ERR_LOCK_PERMISSION'`.
   * Default: `'local'`.
   */
  scope?: WindowsScope;
}

/** Suffix of the info files holding the holder record. */
const INFO_FILE_SUFFIX = '.mutex';

const instances = new Map<WindowsScope, SyncLockDriver>();

/**
 * The Windows named-mutex driver with a choice of namespace. One driver
 * object per scope and thread (calls with the same scope return the same
 * object, so in-process queueing and reentrancy work across calls).
 * Throws a LockDriverError `'ERR_DRIVER_UNSUPPORTED'` off Windows, and
 * `'ERR_DRIVER_UNAVAILABLE'` when the native binding cannot load.
 *
 * Default: `{ scope: 'local' }`, which is also what `driver: 'windows'`
 * (the default driver on Windows) uses.
 *
 * @example
 * ```ts
 * import { Exclusive, windows } from 'exclusive-process';
 * // One copy across all sessions of the machine (a service and a user's tray app):
 * Exclusive.forever({ name: 'updater', driver: windows({ scope: 'global' }), die: true });
 * ```
 */
export function windows(options?: WindowsDriverOptions): SyncLockDriver {
  const scope = parseScope(options);
  if (process.platform !== 'win32') {
    throw new LockDriverError('ERR_DRIVER_UNSUPPORTED', `The windows driver needs Windows; this is ${process.platform}.`);
  }
  let driver = instances.get(scope);
  if (driver === undefined) instances.set(scope, (driver = buildDriver(scope)));
  return driver;
}

/**
 * The default Windows driver (`scope: 'local'`), as chosen by
 * `driver: 'windows'`. Same object as `windows()`.
 *
 * @example
 * ```ts
 * const driver = createWindowsDriver(); // on Windows
 * driver.locate('nightly', undefined); // 'Local\\exclusive-process.nightly'
 * ```
 */
export function createWindowsDriver(): SyncLockDriver {
  return windows();
}

/**
 * The mutex name for a lock: `Local\` or `Global\`, then the lock file
 * name's encoding (`exclusive-process.` + the name with bytes outside
 * `[A-Za-z0-9._-]` %XX-encoded, long names cut and hashed), so it never
 * holds a backslash and stays under 200 of the 260 characters allowed.
 * When the lock directory (`dir` or `EXCLUSIVE_PROCESS_DIR`) is another
 * than the system default, `@` and a hash of it follow: as with lock files,
 * the same name in two directories is two locks, and in one directory
 * (however it was named) one lock. The info file is derived from this name
 * ({@link infoFileName}). Default `scope`: `'local'`.
 *
 * @example
 * ```ts
 * mutexName('backup: C:\\data', undefined); // 'Local\\exclusive-process.backup%3A%20C%3A%5Cdata'
 * mutexName('backup', 'D:\\locks', 'global'); // 'Global\\exclusive-process.backup@1f0c...' (16 hex digits)
 * ```
 */
export function mutexName(name: string, dir: string | undefined, scope: WindowsScope = 'local'): string {
  const base = lockFileName(name).slice(0, -LOCK_FILE_SUFFIX.length);
  const namespace = scope === 'global' ? 'Global\\' : 'Local\\';
  return `${namespace}${base}${directorySuffix(dir)}`;
}

/** `@` and a hash of the lock directory, or '' for the system default directory (also when `dir` names it). */
function directorySuffix(dir: string | undefined): string {
  const chosen = chosenDirectory(dir);
  if (chosen === undefined) return '';
  const path = comparablePath(chosen);
  if (path === comparablePath(systemLockDirectory())) return '';
  return `@${createHash('sha256').update(path).digest('hex').slice(0, 16)}`;
}

/** Windows paths ignore case. */
function comparablePath(path: string): string {
  return process.platform === 'win32' ? path.toLowerCase() : path;
}

/**
 * The info file of the lock whose mutex is `resource`, derived from the
 * mutex name so that two mutexes never share one: its lock part, `@global`
 * for the global namespace, and, when the name has capital letters, `~` and
 * a hash of its exact spelling, since mutex names are case-sensitive and
 * Windows file names are not (`Nightly` and `nightly` are two mutexes).
 * The directory part is where the file lives instead.
 *
 * @example
 * ```ts
 * infoFileName('Local\\exclusive-process.nightly@1f0c2a3b4c5d6e7f'); // 'exclusive-process.nightly.mutex'
 * infoFileName('Global\\exclusive-process.Nightly'); // 'exclusive-process.Nightly@global~<16 hex digits>.mutex'
 * ```
 */
export function infoFileName(resource: string): string {
  const at = resource.lastIndexOf('@'); // an encoded lock name never holds '@'
  const base = resource.slice(resource.indexOf('\\') + 1, at < 0 ? undefined : at);
  const global = resource.startsWith('Global\\') ? '@global' : '';
  // %XX escapes are always upper case: only the name's own capitals can meet their lower-case twins.
  const folded = /[A-Z]/.test(base.replace(/%[0-9A-F]{2}/g, '')) ? `~${createHash('sha256').update(base).digest('hex').slice(0, 16)}` : '';
  return `${base}${global}${folded}${INFO_FILE_SUFFIX}`;
}

const WINDOWS_OPTIONS: OptionsShape = { known: ['scope'], notObject: 'windows() options must be an object', notAnOption: 'is not an option of windows()' };

function parseScope(options: unknown): WindowsScope {
  return oneOf(optionsRecord(options, WINDOWS_OPTIONS).scope, 'scope', ['local', 'global'] as const) ?? 'local';
}

/** Idle waiter threads kept for the next wait (starting one takes about 30 ms). */
const MAX_IDLE_WAITERS = 2;

/** A mutex handle of this thread, kept open between acquisitions (most recently used last). */
interface Cached {
  readonly handle: number;
  held: boolean;
  /** The info file this thread last wrote for it: removed, if the mutex is free, when the handle is closed. */
  info?: string;
}

/** A lock acquired by a waiter thread, which owns it until release. */
interface WaiterLock {
  readonly waiter: Waiter;
  readonly info: string;
}

function buildDriver(scope: WindowsScope): SyncLockDriver {
  const k = loadKernel32();
  /**
   * The lock directory behind each directory hash that mutex names carry
   * ('' for the default directory), learnt by locate(): info files go there.
   * One entry per directory, never per name.
   */
  const directories = new Map<string, string>();
  const handles = new Map<string, Cached>();
  /** Locks held by a waiter thread (acquired by waitLock). */
  const waiterHeld = new Map<string, WaiterLock>();
  const waiters: Waiter[] = [];

  /** The info file of the lock whose mutex is `resource`. */
  function infoPath(resource: string): string {
    const directory = directories.get(directoryKey(resource)) ?? systemLockDirectory();
    return join(directory, infoFileName(resource));
  }

  function open(resource: string): Cached {
    let cached = handles.get(resource);
    if (cached !== undefined) {
      handles.delete(resource);
    } else {
      const created = k.createMutex(resource);
      if (created.handle === 0) throw mutexError(created.error, resource, scope);
      cached = { handle: created.handle, held: false };
    }
    handles.set(resource, cached);
    return cached;
  }

  /**
   * Acquires the mutex on the calling thread, waiting up to `ms` in
   * WaitForSingleObject (INFINITE: until it is released or its owner dies).
   */
  function lockHere(resource: string, record: HolderRecord, ms: number): DriverLock | null {
    if (waiterHeld.has(resource)) return null; // our own waiter thread holds it
    const cached = open(resource);
    // Mutexes are recursive for their owner: acquiring again here would not exclude anything.
    if (cached.held) return null;
    const result = k.wait(cached.handle, ms);
    if (result === WAIT_TIMEOUT) {
      evictIdleHandles();
      return null;
    }
    if (result !== WAIT_OBJECT_0 && result !== WAIT_ABANDONED) throw mutexError(k.lastError(), resource, scope);
    cached.held = true;
    cached.info ??= infoPath(resource);
    writeInfo(cached.info, record);
    let released = false;
    return {
      abandoned: result === WAIT_ABANDONED,
      release() {
        if (released) return;
        released = true;
        cached.held = false;
        k.releaseMutex(cached.handle);
        if (handles.get(resource) === cached) evictIdleHandles();
      },
    };
  }

  async function waitLock(resource: string, record: HolderRecord, signal: AbortSignal): Promise<DriverLock | null> {
    if (signal.aborted) return null;
    let waiter = waiters.find((w) => w.idle);
    if (waiter === undefined) waiters.push((waiter = new Waiter(k)));
    const reply = await waiter.wait(resource, signal);
    if (reply.type !== 'acquired') retireSpareWaiters();
    if (reply.type === 'cancelled') return null;
    if (reply.type === 'error') throw mutexError(reply.error, resource, scope);
    const held: WaiterLock = { waiter, info: infoPath(resource) };
    waiterHeld.set(resource, held);
    writeInfo(held.info, { ...record, since: new Date() });
    let released = false;
    return {
      abandoned: reply.abandoned,
      lost: waiter.lost,
      release() {
        if (released) return;
        released = true;
        waiterHeld.delete(resource);
        removeInfo(held.info); // while still holding it: nobody else can be writing it
        waiter.release();
        retireSpareWaiters();
      },
    };
  }

  /**
   * Keeps at most MAX_IDLE_WAITERS idle waiter threads: a burst of waits on
   * many names starts a thread for each, which must not stay for ever.
   */
  function retireSpareWaiters(): void {
    let idle = 0;
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i];
      if (waiter.idle && ++idle > MAX_IDLE_WAITERS) waiter.close();
      if (waiter.dead) waiters.splice(i, 1);
    }
  }

  function writeInfo(info: string, record: HolderRecord): void {
    let file: ReturnType<typeof openLockFile> | undefined;
    try {
      file = openLockFile(info);
      // Windows has no O_NOFOLLOW: write only if the path is the file we opened, not a link to elsewhere.
      const stat = lstatSync(info);
      if (!stat.isSymbolicLink() && stat.ino === file.ino) writeRecord(file.fd, encodeRecord(record));
    } catch {
      // The record is informational: the lock is held whatever happens to it (holder() then reports pid null).
    } finally {
      if (file !== undefined) closeSync(file.fd);
    }
  }

  function readInfo(info: string): HolderRecord | null {
    try {
      return readRecordAt(info);
    } catch {
      return null; // unsafe or unreadable: no holder details
    }
  }

  /**
   * Removes the info file of a mutex nobody holds. Asks the kernel
   * (NtQueryMutant) rather than taking the mutex, so a concurrent tryLock
   * never fails because of us; at worst a record written in between is lost.
   */
  function removeInfoIfFree(resource: string, info: string): void {
    const opened = k.openMutex(resource);
    let free = opened.error === ERROR_FILE_NOT_FOUND;
    if (opened.handle !== 0) {
      const state = k.mutexState(opened.handle);
      free = state !== undefined && state.count > 0;
      k.closeHandle(opened.handle);
    }
    if (free) removeInfo(info);
  }

  function evictIdleHandles(): void {
    evictIdle(handles, (resource, cached) => {
      handles.delete(resource);
      k.closeHandle(cached.handle); // not owned: closing gives nothing up
      if (cached.info !== undefined) removeInfoIfFree(resource, cached.info);
    });
  }


  return {
    kind: 'windows',
    synchronous: true,
    locate(name, dir) {
      const resource = mutexName(name, dir, scope);
      const key = directoryKey(resource);
      if (!directories.has(key)) directories.set(key, lockDirectory(dir));
      return resource;
    },
    tryLock: (resource, record) => lockHere(resource, record, 0),
    waitLock,
    // Blocks this thread in the kernel, as flock does for the posix driver: the release (or the owner's death) hands
    // the mutex over at once. The shared code never calls it while this thread holds the lock (that is a conflict).
    waitLockSync(resource, record) {
      const lock = lockHere(resource, record, INFINITE);
      if (lock === null) throw new LockFileError('ERR_LOCK_IO', resource, `This thread already holds the mutex ${resource}: waiting for it would never end.`);
      return lock;
    },
    holder(resource, name) {
      const info = infoPath(resource);
      const unknown = (record: HolderRecord | null): HolderRecord => ({ name: record?.name ?? name, pid: null });
      const live = (record: HolderRecord | null): HolderRecord | null =>
        record !== null && record.pid !== null && isRunning(record.pid, record.start) ? record : null;
      if (handles.get(resource)?.held || waiterHeld.has(resource)) return readInfo(info) ?? { ...unknown(null), pid: process.pid };
      const opened = k.openMutex(resource);
      if (opened.handle === 0) {
        if (opened.error === ERROR_FILE_NOT_FOUND) return null; // no process has it open, so nobody holds it
        const record = live(readInfo(info)); // another user's mutex: we may not look at it, so trust a live record
        return record;
      }
      let held: boolean;
      try {
        const state = k.mutexState(opened.handle);
        if (state !== undefined) {
          held = state.count <= 0;
        } else {
          // No NtQueryMutant: probe by taking it. A concurrent tryLock can fail during the probe (and an
          // abandoned state is consumed); only reached on systems without ntdll's query.
          const result = k.wait(opened.handle, 0);
          held = result === WAIT_TIMEOUT;
          if (!held && (result === WAIT_OBJECT_0 || result === WAIT_ABANDONED)) k.releaseMutex(opened.handle);
        }
      } finally {
        k.closeHandle(opened.handle);
      }
      if (!held) return null;
      const record = readInfo(info);
      return live(record) ?? unknown(record);
    },
    list: (dir) => lockNamesIn(dir, (path) => readRecordAt(path)?.name, (name) => infoFileName(mutexName(name, dir, scope))),
    cleanup() {
      // Held: remove the record while still holding it (nobody else can be writing it), then release.
      for (const { waiter, info } of waiterHeld.values()) {
        removeInfo(info);
        waiter.release();
      }
      waiterHeld.clear();
      for (const waiter of waiters) waiter.stop(); // waits in progress end; their threads let go of anything
      for (const [resource, cached] of handles) {
        if (cached.held) {
          removeInfo(cached.info!);
          cached.held = false;
          k.releaseMutex(cached.handle);
          k.closeHandle(cached.handle);
        } else {
          k.closeHandle(cached.handle);
          if (cached.info !== undefined) removeInfoIfFree(resource, cached.info);
        }
      }
      handles.clear();
    },
  };
}

/** The part of a mutex name that tells its lock directory apart: the `@` hash (an encoded lock name never holds `@`), '' for the system default. */
function directoryKey(resource: string): string {
  const at = resource.lastIndexOf('@');
  return at < 0 ? '' : resource.slice(at);
}

function removeInfo(info: string): void {
  try {
    unlinkSync(info);
  } catch {
    // Already gone, or in use by a reader: a stale record is harmless (holder() checks the mutex first).
  }
}

/** A Windows error from CreateMutexW/WaitForSingleObject as a typed error naming the mutex and the fix. */
function mutexError(error: number, resource: string, scope: WindowsScope): LockFileError {
  if (error === ERROR_ACCESS_DENIED) {
    return new LockFileError('ERR_LOCK_PERMISSION', resource, scope === 'global'
      ? `Access denied to the global mutex ${resource}: creating objects in the Global\\ namespace needs SeCreateGlobalPrivilege ` +
        '(services and elevated administrators have it), and a mutex another user created may refuse others. ' +
        "Run elevated or as that user, or use windows({ scope: 'local' }) if the lock only has to hold within this session."
      : `Access denied to the mutex ${resource}: it was created by another user or an elevated process. Run as that user, or choose another lock name.`);
  }
  if (error === ERROR_INVALID_HANDLE) {
    return new LockFileError('ERR_LOCK_FILE_UNSAFE', resource,
      `The name ${resource} is taken by another kind of kernel object (an event, semaphore or section), not a mutex; refusing to use it. Choose another lock name.`);
  }
  return new LockFileError('ERR_LOCK_IO', resource, `Cannot use the named mutex ${resource} (Windows error ${error}).`);
}

