import { LockFileError } from '../../shared/errors.js';
import { evictIdle } from '../file/idle-cache.js';
import {
  ERROR_ACCESS_DENIED,
  ERROR_INVALID_HANDLE,
  WAIT_ABANDONED,
  WAIT_OBJECT_0,
  WAIT_TIMEOUT,
  type Kernel32,
} from '../../native/kernel32.js';
import { removeInfoIfFree, writeInfo } from './info-file.js';
import { admitWriter } from './mode-holds.js';
import { familyOf } from './modes.js';
import { infoPath, type Cached, type DriverState } from './state.js';
import type { WindowsScope } from './index.js';
import type { DriverLock, HolderRecord } from '../types.js';

/** This thread's handle of the mutex `resource` (created or opened on first use), now the most recently used. */
export function openHandle(state: DriverState, resource: string): Cached {
  let cached = state.handles.get(resource);
  if (cached !== undefined) {
    state.handles.delete(resource);
  } else {
    const created = state.k.createMutex(resource);
    if (created.handle === 0) throw mutexError(created.error, resource, state.scope);
    cached = { handle: created.handle, held: false };
  }
  state.handles.set(resource, cached);
  return cached;
}

/**
 * Acquires the mutex on the calling thread, waiting up to `ms` in
 * WaitForSingleObject (INFINITE: until it is released or its owner dies).
 */
export function lockHere(state: DriverState, resource: string, record: HolderRecord, ms: number): DriverLock | null {
  if (state.waiterHeld.has(resource)) return null; // our own waiter thread holds it
  const cached = openHandle(state, resource);
  // Mutexes are recursive for their owner: acquiring again here would not exclude anything.
  if (cached.held && cached.kept === undefined) return null;
  const result = cached.kept ?? state.k.wait(cached.handle, ms);
  if (result === WAIT_TIMEOUT) {
    evictIdleHandles(state);
    return null;
  }
  if (result !== WAIT_OBJECT_0 && result !== WAIT_ABANDONED) throw mutexError(state.k.lastError(), resource, state.scope);
  if (!writerAdmitted(state, resource, record, cached, ms, result)) return null;
  cached.kept = undefined;
  cached.held = true;
  cached.info ??= infoPath(state, resource);
  writeInfo(cached.info, record);
  let released = false;
  return {
    abandoned: result === WAIT_ABANDONED,
    release() {
      if (released) return;
      released = true;
      cached.held = false;
      state.k.releaseMutex(cached.handle);
      if (state.handles.get(resource) === cached) evictIdleHandles(state);
    },
  };
}

/**
 * Holding the mutex (got with `result`): true when the writer may go on (see
 * admitWriter: readers of the name leave within `ms`). Else the mutex is
 * given back, or kept while the writer's wait is announced (see announceWriter);
 * a mismatch is thrown once it is given back.
 */
function writerAdmitted(state: DriverState, resource: string, record: HolderRecord, cached: Cached, ms: number, result: number): boolean {
  let admitted: boolean | 'mismatch' = 'mismatch';
  try {
    admitted = admitWriter(state, resource, record, ms);
  } finally {
    if (admitted === false && state.announced.has(resource)) {
      cached.held = true; // kept: not closed as idle, nor taken again
      cached.kept = result;
    } else if (admitted !== true) {
      cached.held = false;
      cached.kept = undefined;
      state.k.releaseMutex(cached.handle);
      evictIdleHandles(state);
    }
  }
  return admitted === true;
}

/**
 * A writer's wait starts on this thread (the shared code calls this around
 * every wait). While it lasts, a try that got the mutex but found readers
 * inside keeps the mutex instead of giving it back, so no new reader gets
 * in between the polls of a synchronous wait. A wait on the waiter thread
 * needs none of this: it holds the mutex while the readers leave.
 */
export function announceWriter(state: DriverState, resource: string, record: HolderRecord): () => void {
  if (familyOf(record) !== undefined) return () => {};
  state.announced.set(resource, (state.announced.get(resource) ?? 0) + 1);
  return () => {
    const count = state.announced.get(resource)! - 1;
    if (count > 0) return void state.announced.set(resource, count);
    state.announced.delete(resource);
    const cached = state.handles.get(resource);
    if (cached?.kept === undefined) return;
    cached.kept = undefined;
    cached.held = false;
    state.k.releaseMutex(cached.handle);
  };
}

/** Closes the least recently used idle handles beyond the cache's bound, with their info files if the mutex is free. */
export function evictIdleHandles(state: DriverState): void {
  evictIdle(state.handles, (resource, cached) => {
    state.handles.delete(resource);
    state.k.closeHandle(cached.handle); // not owned: closing gives nothing up
    if (cached.info !== undefined) removeInfoIfFree(state.k, resource, cached.info);
  });
}

/** True when some thread owns the mutex behind `handle` (a handle of ours that does not own it). */
export function mutexHeld(k: Kernel32, handle: number): boolean {
  const state = k.mutexState(handle);
  if (state !== undefined) return state.count <= 0;
  // No NtQueryMutant: probe by taking it. A concurrent tryLock can fail during the probe (and an
  // abandoned state is consumed); only reached on systems without ntdll's query.
  const result = k.wait(handle, 0);
  const held = result === WAIT_TIMEOUT;
  if (!held && (result === WAIT_OBJECT_0 || result === WAIT_ABANDONED)) k.releaseMutex(handle);
  return held;
}

/** A Windows error from CreateMutexW/WaitForSingleObject as a typed error naming the mutex and the fix. */
export function mutexError(error: number, resource: string, scope: WindowsScope): LockFileError {
  if (error === ERROR_ACCESS_DENIED) {
    return new LockFileError(
      'ERR_LOCK_PERMISSION',
      resource,
      scope === 'global'
        ? `Access denied to the global mutex ${resource}: creating objects in the Global\\ namespace needs SeCreateGlobalPrivilege ` +
            '(services and elevated administrators have it), and a mutex another user created may refuse others. ' +
            "Run elevated or as that user, or use windows({ scope: 'local' }) if the lock only has to hold within this session."
        : `Access denied to the mutex ${resource}: it was created by another user or an elevated process. Run as that user, or choose another lock name.`
    );
  }
  if (error === ERROR_INVALID_HANDLE) {
    return new LockFileError(
      'ERR_LOCK_FILE_UNSAFE',
      resource,
      `The name ${resource} is taken by another kind of kernel object (an event, semaphore or section), not a mutex; refusing to use it. Choose another lock name.`
    );
  }
  return new LockFileError('ERR_LOCK_IO', resource, `Cannot use the named mutex ${resource} (Windows error ${error}).`);
}
