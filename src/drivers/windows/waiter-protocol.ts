/**
 * What the Windows driver and its waiter thread (waiter.ts) share:
 * a SharedArrayBuffer of Int32 slots for the synchronous parts (cancel,
 * release, exit, state), messages for the asynchronous ones.
 */

/** Slots of the control array. */
export const CONTROL = {
  /** Set by the driver when the wait's signal aborts. */
  CANCEL: 0,
  /** Set by the driver's release(); the waiter clears it once released. */
  RELEASE: 1,
  /** Set at process exit: stop waiting, release what is held. */
  EXIT: 2,
  /** IDLE, WAITING or HOLDING, written by the waiter (notified on change to IDLE). */
  STATE: 3,
} as const;
export const CONTROL_SLOTS = 4;

export const IDLE = 0;
export const WAITING = 1;
export const HOLDING = 2;

/** Longest time the waiter spends in one native wait (bounds how long exit can be delayed). */
export const SLICE_MS = 50;

/** The worker's `workerData`. */
export interface WaiterData {
  /** SharedArrayBuffer of CONTROL_SLOTS Int32 slots. */
  control: SharedArrayBuffer;
  /** A manual-reset event the driver sets to cancel a wait at once. */
  cancelEvent: number;
}

/** Driver -> waiter: wait for this mutex (exclusive), or for a slot of its shared or counted lock, and hold it. */
export interface WaiterJob {
  name: string;
  /** `shared` or `limit N` (modes.ts); absent: exclusive. */
  family?: string;
  /** The info file saying which family the name's holders use. */
  familyFile: string;
}

/**
 * Waiter -> driver: how a job ended (or that it now holds the mutex, or the
 * slot `slot`); `mismatch`: the name's holders use it as `held` says.
 */
export type WaiterReply =
  | { type: 'acquired'; abandoned: boolean; slot?: number }
  | { type: 'cancelled' }
  | { type: 'error'; error: number; name?: string }
  | { type: 'mismatch'; held: string };
