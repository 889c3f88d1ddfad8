import { lockMismatch } from '../../shared/errors.js';
import { INFINITE, WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT } from '../../native/kernel32.js';
import { removeInfo, writeInfo } from './info-file.js';
import { evictIdleHandles, mutexError, openHandle } from './mutex.js';
import { closeAll, currentFamily, joinFamily, markerName, openReaderSlots, readersGone, slotNames, useOf, type Family } from './modes.js';
import { infoPath, type Cached, type DriverState } from './state.js';
import { mutexHolder } from './holder.js';
import type { DriverLock, HolderRecord } from '../types.js';

/**
 * Shared and counted holds taken on the driver's own thread (tryLock,
 * waitLockSync), the writer's side of them, and who holds a name that way
 * (see modes.ts for the objects).
 */

/** How long a try waits for R while other shared or counted holders pass through it (microseconds of work each). */
const PASS_MS = 20;
/** How long a blocking shared wait sleeps when all reader slots were taken. */
const FULL_RETRY_MS = 10;

/** The info file saying which family the name's shared or counted holders use. */
export const familyFile = (state: DriverState, resource: string): string => infoPath(state, markerName(resource));

/** True when this thread holds R (exclusively), itself or through its waiter thread. */
function heldHere(state: DriverState, resource: string): boolean {
  return state.handles.get(resource)?.held === true || state.waiterHeld.has(resource);
}

/**
 * A shared or counted hold (`family`) on this thread: through R (waiting up
 * to `ms` for it: 0, or INFINITE), the family joined, then a free slot. Null
 * when R or every slot is taken; ERR_LOCK_MISMATCH when the holders use the
 * name otherwise.
 */
export function lockInFamily(state: DriverState, resource: string, record: HolderRecord, family: Family, ms: number): DriverLock | null {
  if (heldHere(state, resource)) throw lockMismatch(record.name, {}, record);
  for (;;) {
    const lock = tryInFamily(state, resource, record, family, ms);
    if (lock !== null || ms !== INFINITE) return lock;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, FULL_RETRY_MS); // every slot taken (rare): look again
  }
}

function tryInFamily(state: DriverState, resource: string, record: HolderRecord, family: Family, ms: number): DriverLock | null {
  const { k } = state;
  const main = openHandle(state, resource);
  if (!passThrough(state, resource, main, ms)) {
    evictIdleHandles(state);
    return null;
  }
  let marker = 0;
  let slot: TakenSlot | null = null;
  try {
    const joined = joinFamily(k, resource, familyFile(state, resource), family);
    if ('error' in joined) throw mutexError(joined.error, markerName(resource), state.scope);
    if ('held' in joined) throw lockMismatch(record.name, useOf(joined.held), record);
    marker = joined.marker;
    state.families.add(resource);
    slot = takeSlot(state, slotNames(resource, family));
  } finally {
    k.releaseMutex(main.handle);
    if (slot === null && marker !== 0) k.closeHandle(marker);
  }
  if (slot === null) {
    evictIdleHandles(state);
    return null;
  }
  return holdSlot(state, resource, record, slot, marker);
}

/**
 * Takes R on the way in (given back once the slot is taken). A try waits
 * PASS_MS for it when the name has shared or counted holders (R is then
 * most likely another one passing through); else held means an exclusive holder.
 */
function passThrough(state: DriverState, resource: string, main: Cached, ms: number): boolean {
  const { k } = state;
  let result = k.wait(main.handle, ms);
  if (result === WAIT_TIMEOUT && ms === 0 && currentFamily(k, resource, familyFile(state, resource)) !== undefined) {
    result = k.wait(main.handle, PASS_MS);
  }
  if (result === WAIT_TIMEOUT) return false;
  if (result !== WAIT_OBJECT_0 && result !== WAIT_ABANDONED) throw mutexError(k.lastError(), resource, state.scope);
  return true;
}

interface TakenSlot {
  readonly index: number;
  readonly name: string;
  readonly cached: Cached;
}

/** The first free slot among `names` that this thread does not hold (a mutex is recursive for its owner), taken; null when all are. */
function takeSlot(state: DriverState, names: readonly string[]): TakenSlot | null {
  for (const [index, name] of names.entries()) {
    if (state.waiterHeld.has(name)) continue;
    const cached = openHandle(state, name);
    if (cached.held) continue;
    const result = state.k.wait(cached.handle, 0);
    if (result === WAIT_OBJECT_0 || result === WAIT_ABANDONED) {
      cached.held = true;
      return { index, name, cached };
    }
    if (result !== WAIT_TIMEOUT) throw mutexError(state.k.lastError(), name, state.scope);
  }
  return null;
}

function holdSlot(state: DriverState, resource: string, record: HolderRecord, slot: TakenSlot, marker: number): DriverLock {
  const { k } = state;
  const info = (slot.cached.info ??= infoPath(state, slot.name));
  writeInfo(info, record);
  state.markers.set(marker, resource);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      removeInfo(info); // while still holding it: nobody else can be writing it
      slot.cached.held = false;
      k.releaseMutex(slot.cached.handle);
      state.markers.delete(marker);
      k.closeHandle(marker);
      if (state.handles.get(slot.name) === slot.cached) evictIdleHandles(state);
    },
    contended: () => writerWaits(state, resource),
  };
}

/**
 * For a shared hold: true when a writer waits, holding R until the readers
 * inside leave (or another holder passes through R this very moment).
 */
export function writerWaits(state: DriverState, resource: string): boolean {
  const opened = state.k.openMutex(resource);
  if (opened.handle === 0) return false;
  try {
    const mutex = state.k.mutexState(opened.handle);
    return mutex !== undefined && mutex.count <= 0 && !mutex.ownedByCaller;
  } finally {
    state.k.closeHandle(opened.handle);
  }
}

/**
 * The writer's side, holding R: free to go on when the name has no shared
 * or counted holder; waits up to `ms` for readers inside to leave (false
 * when they did not); ERR_LOCK_MISMATCH when it is held counted.
 */
export function admitWriter(state: DriverState, resource: string, record: HolderRecord, ms: number): boolean {
  const { k } = state;
  const family = currentFamily(k, resource, familyFile(state, resource));
  if (family === undefined) return true;
  if (family !== 'shared' && family !== '') throw lockMismatch(record.name, useOf(family), record);
  const slots = openReaderSlots(k, resource);
  try {
    const gone = readersGone(k, slots, ms);
    if (gone === 'failed') throw mutexError(k.lastError(), resource, state.scope);
    return gone;
  } finally {
    closeAll(k, slots);
  }
}

/**
 * At exit, once this thread's holds are given back: closes their `R#family`
 * handles, and removes the family file of each name it used that no holder
 * uses any more. Only while holding R, as its writers do, so a file just
 * written by another process's first holder is never removed.
 */
export function forgetFamilies(state: DriverState): void {
  const { k } = state;
  for (const marker of state.markers.keys()) k.closeHandle(marker);
  state.markers.clear();
  for (const resource of state.families) {
    const main = k.createMutex(resource);
    if (main.handle === 0) continue;
    const result = k.wait(main.handle, 0);
    if (result === WAIT_OBJECT_0 || result === WAIT_ABANDONED) {
      if (currentFamily(k, resource, familyFile(state, resource)) === undefined) removeInfo(familyFile(state, resource));
      k.releaseMutex(main.handle);
    }
    k.closeHandle(main.handle);
  }
  state.families.clear();
}

/**
 * Every shared or counted holder (its record, with its slot when counted),
 * or undefined when the name has none: then R's holder, if any, is the one.
 */
export function familyHolders(state: DriverState, resource: string, name: string): HolderRecord[] | undefined {
  const family = currentFamily(state.k, resource, familyFile(state, resource));
  if (family === undefined) return undefined;
  const counted = family.startsWith('limit ');
  const holders: HolderRecord[] = [];
  for (const [slot, slotName] of slotNames(resource, counted ? family : 'shared').entries()) {
    const holder = mutexHolder(state, slotName, name);
    if (holder !== null) holders.push(counted ? { ...holder, slot } : holder);
  }
  return holders;
}
