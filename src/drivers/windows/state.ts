import { join } from 'node:path';
import { systemLockDirectory } from '../file/path.js';
import { loadKernel32, type Kernel32 } from '../../native/kernel32.js';
import { infoFileName } from './info-file.js';
import { directoryKey } from './mutex-name.js';
import type { Waiter } from './waiter-pool.js';
import type { WindowsScope } from './index.js';

/** A mutex handle of this thread, kept open between acquisitions (most recently used last). */
export interface Cached {
  readonly handle: number;
  held: boolean;
  /** The info file this thread last wrote for it: removed, if the mutex is free, when the handle is closed. */
  info?: string;
  /** Owned (and `held`) for an announced writer's wait, not yet a lock: how the wait for it ended (WAIT_OBJECT_0 or WAIT_ABANDONED). */
  kept?: number;
}

/** A lock acquired by a waiter thread, which owns it until release. */
export interface WaiterLock {
  readonly waiter: Waiter;
  readonly info: string;
}

/** What one driver object (one scope, one thread) keeps. */
export interface DriverState {
  readonly k: Kernel32;
  readonly scope: WindowsScope;
  /**
   * The lock directory behind each directory hash that mutex names carry
   * ('' for the default directory), learnt by locate(): info files go there.
   * One entry per directory, never per name.
   */
  readonly directories: Map<string, string>;
  /** Mutex handles of this thread. */
  readonly handles: Map<string, Cached>;
  /** Locks held by a waiter thread (acquired by waitLock). */
  readonly waiterHeld: Map<string, WaiterLock>;
  readonly waiters: Waiter[];
  /** Names whose exclusive wait is announced on this thread (see announceWriter), with how many. */
  readonly announced: Map<string, number>;
  /** The open `R#family` handles of this thread's shared and counted holds, with their name's mutex (closed at release, or at exit). */
  readonly markers: Map<number, string>;
  /** Names this thread (or its waiters) used shared or counted: at exit their family file is removed if no holder is left. */
  readonly families: Set<string>;
}

export function newDriverState(scope: WindowsScope): DriverState {
  return {
    k: loadKernel32(),
    scope,
    directories: new Map(),
    handles: new Map(),
    waiterHeld: new Map(),
    waiters: [],
    announced: new Map(),
    markers: new Map(),
    families: new Set(),
  };
}

/** The info file of the lock whose mutex is `resource`. */
export function infoPath(state: DriverState, resource: string): string {
  const directory = state.directories.get(directoryKey(resource)) ?? systemLockDirectory();
  return join(directory, infoFileName(resource));
}
