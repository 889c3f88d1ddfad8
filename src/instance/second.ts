import { CannotAcquireLock } from '../shared/errors.js';
import type { HolderRecord } from '../shared/holder-record.js';
import type { Delivery } from './conversation.js';

/**
 * When a second instance tries again. It finds the lock held but nobody
 * listening in two harmless cases: the holder has just taken the lock and
 * is about to listen (it does so in the same synchronous call, so within
 * microseconds unless the machine is loaded), or it has just died (the lock
 * is then free at the next try, and this process may become the first).
 * Otherwise the holder does not listen at all (no `onSecondInstance`): the
 * second then behaves as without one.
 */

/** Always retry this long, to cover a holder between taking the lock and writing its record or listening. */
export const MIN_RETRY_MS = 100;
/** A holder that took the lock less than this long ago may still be about to listen. */
export const STARTUP_GRACE_MS = 2_000;
/** Never retry longer than this. */
export const MAX_RETRY_MS = 5_000;
/** The pause between tries. */
export const RETRY_PAUSE_MS = 5;

/** Whether to try again, `startedAt` being when this process started trying. */
export function mayBeStarting(holder: HolderRecord | null, startedAt: number): boolean {
  const now = Date.now();
  if (now - startedAt < MIN_RETRY_MS) return true;
  if (now - startedAt >= MAX_RETRY_MS) return false;
  // Without a record (not written yet) the holder may be starting; with one, its age says.
  return holder?.since === undefined || now - holder.since.getTime() < STARTUP_GRACE_MS;
}

/** What a second instance's `forever()` comes to: the lock (it is the first now), the reply, or the conflict (nobody listens). */
export type SecondOutcome<L> =
  | { readonly kind: 'lock'; readonly lock: L }
  | { readonly kind: 'replied'; readonly delivery: Extract<Delivery, { kind: 'replied' }>; readonly conflict: CannotAcquireLock }
  | { readonly kind: 'conflict'; readonly conflict: CannotAcquireLock };

/**
 * Takes the lock, or delivers the message to its holder: exactly one of
 * them, whatever the holder does meanwhile (starts listening, dies). A
 * message is sent again only when the holder did not take it.
 */
export function lockOrDeliverSync<L>(tryLock: () => L, deliver: () => Delivery): SecondOutcome<L> {
  const startedAt = Date.now();
  for (;;) {
    let conflict: CannotAcquireLock;
    try {
      return { kind: 'lock', lock: tryLock() };
    } catch (error) {
      if (!(error instanceof CannotAcquireLock) || error.reason !== 'held-elsewhere') throw error;
      conflict = error;
    }
    const delivery = deliver();
    if (delivery.kind === 'replied') return { kind: 'replied', delivery, conflict };
    if (!mayBeStarting(conflict.holder, startedAt)) return { kind: 'conflict', conflict };
    sleepSync(RETRY_PAUSE_MS);
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` (the synchronous form has nothing else to do meanwhile). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
