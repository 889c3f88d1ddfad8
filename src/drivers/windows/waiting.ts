import { lockMismatch } from '../../shared/errors.js';
import { removeInfo, writeInfo } from './info-file.js';
import { familyFile, writerWaits } from './mode-holds.js';
import { familyOf, slotNames, useOf } from './modes.js';
import { mutexError } from './mutex.js';
import { infoPath, type DriverState, type WaiterLock } from './state.js';
import { Waiter } from './waiter-pool.js';
import type { DriverLock, HolderRecord } from '../types.js';

/** Idle waiter threads kept for the next wait (starting one takes about 30 ms). */
const MAX_IDLE_WAITERS = 2;

/**
 * Waits for the mutex (or for a shared or counted lock, a slot of it) on a
 * waiter thread (never on libuv's pool, where blocking waits would stall
 * `fs` and `dns`), which then holds it until `release` asks it,
 * synchronously. Null when `signal` cancelled the wait.
 */
export async function waitOnWaiter(
  state: DriverState,
  resource: string,
  record: HolderRecord,
  signal: AbortSignal
): Promise<DriverLock | null> {
  if (signal.aborted) return null;
  let waiter = state.waiters.find((w) => w.idle);
  if (waiter === undefined) state.waiters.push((waiter = new Waiter(state.k)));
  const family = familyOf(record);
  if (family !== undefined) state.families.add(resource);
  const reply = await waiter.wait({ name: resource, family, familyFile: familyFile(state, resource) }, signal);
  if (reply.type !== 'acquired') retireSpareWaiters(state);
  if (reply.type === 'cancelled') return null;
  if (reply.type === 'error') throw mutexError(reply.error, reply.name ?? resource, state.scope);
  if (reply.type === 'mismatch') throw lockMismatch(record.name, useOf(reply.held), record);
  // What the waiter owns: the name's mutex, or one slot of it.
  const owned = reply.slot === undefined ? resource : slotNames(resource, family!)[reply.slot];
  const held: WaiterLock = { waiter, info: infoPath(state, owned) };
  state.waiterHeld.set(owned, held);
  writeInfo(held.info, { ...record, since: new Date() });
  let released = false;
  return {
    abandoned: reply.abandoned,
    lost: waiter.lost,
    release() {
      if (released) return;
      released = true;
      state.waiterHeld.delete(owned);
      removeInfo(held.info); // while still holding it: nobody else can be writing it
      held.waiter.release();
      retireSpareWaiters(state);
    },
    ...(family === 'shared' && { contended: () => writerWaits(state, resource) }),
  };
}

/**
 * Keeps at most MAX_IDLE_WAITERS idle waiter threads: a burst of waits on
 * many names starts a thread for each, which must not stay for ever.
 */
function retireSpareWaiters(state: DriverState): void {
  let idle = 0;
  for (let i = state.waiters.length - 1; i >= 0; i--) {
    const waiter = state.waiters[i];
    if (waiter.idle && ++idle > MAX_IDLE_WAITERS) waiter.close();
    if (waiter.dead) state.waiters.splice(i, 1);
  }
}

/** Lets go of every lock held by a waiter thread (removing its record first, while still holding it), and stops the waiters. */
export function releaseWaiters(state: DriverState): void {
  for (const { waiter, info } of state.waiterHeld.values()) {
    removeInfo(info);
    waiter.release();
  }
  state.waiterHeld.clear();
  for (const waiter of state.waiters) waiter.stop(); // waits in progress end; their threads let go of anything
}
