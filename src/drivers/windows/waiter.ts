import { parentPort, workerData } from 'node:worker_threads';
import { loadKernel32, WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT } from '../../native/kernel32.js';
import { closeAll, currentFamily, joinFamily, openReaderSlots, packHandles, readersGone, slotNames } from './modes.js';
import { CONTROL, HOLDING, IDLE, SLICE_MS, WAITING, type WaiterData, type WaiterJob, type WaiterReply } from './waiter-protocol.js';

/**
 * The waiter thread of the Windows driver (a worker_threads worker). A
 * mutex belongs to the thread that acquired it, so the thread that waits
 * must also hold it until release: this one does, one lock at a time (the
 * name's mutex, or for a shared or counted lock its slot, see modes.ts).
 *
 * - Waiting: WaitForMultipleObjects on [cancel event, mutexes] in slices, so
 *   an abort (the event) is seen at once and process exit never finds the
 *   thread stuck in native code for more than SLICE_MS. A writer waiting for
 *   readers to leave (all their slots at once) sees an abort at the next slice.
 * - Holding: blocked in Atomics.wait until the owning thread's release()
 *   sets RELEASE; it then releases and acknowledges, so release() stays
 *   synchronous. Atomics.wait is interrupted by worker termination.
 */

const k = loadKernel32();
const data = workerData as WaiterData;
const control = new Int32Array(data.control);
const port = parentPort!;
/** WaitForMultipleObjects takes 64 handles: the cancel event and 63 mutexes (a 64th slot is tried at each slice). */
const MAX_LISTED = 63;

port.on('message', (job: WaiterJob) => {
  const reply = run(job);
  if (reply !== undefined) port.postMessage(reply);
});

/** A wait's end: a reply, or the lock acquired and the owned mutex to hold (and handles to close) until release. */
type Outcome = { reply: WaiterReply } | { acquired: WaiterReply; owned: number; close: number[] };

function run(job: WaiterJob): WaiterReply | undefined {
  Atomics.store(control, CONTROL.STATE, WAITING);
  let outcome: Outcome;
  try {
    outcome = job.family === undefined ? waitExclusive(job) : job.family === 'shared' ? waitShared(job) : waitCounted(job);
  } catch {
    outcome = { reply: { type: 'error', error: k.lastError() } };
  }
  if ('reply' in outcome) return finish(outcome.reply);
  Atomics.store(control, CONTROL.STATE, HOLDING);
  port.postMessage(outcome.acquired);
  hold(outcome.owned, outcome.close);
  return undefined;
}

/** The name's mutex, then (when it has readers) until they leave. */
function waitExclusive(job: WaiterJob): Outcome {
  const main = k.createMutex(job.name);
  if (main.handle === 0) return { reply: { type: 'error', error: main.error } };
  const got = waitForAny([main.handle]);
  if ('type' in got) return closed({ reply: got }, [main.handle]);
  const admitted = admit(job);
  if (admitted !== true) {
    k.releaseMutex(main.handle);
    return closed({ reply: admitted }, [main.handle]);
  }
  return { acquired: { type: 'acquired', abandoned: got.abandoned }, owned: main.handle, close: [] };
}

/** Holding the name's mutex: true once no reader holds a slot (none can enter meanwhile); a counted name is a mismatch. */
function admit(job: WaiterJob): true | WaiterReply {
  const family = currentFamily(k, job.name, job.familyFile);
  if (family === undefined) return true;
  if (family !== 'shared' && family !== '') return { type: 'mismatch', held: family };
  const slots = openReaderSlots(k, job.name);
  try {
    for (;;) {
      const gone = readersGone(k, slots, SLICE_MS);
      if (gone === true) return true;
      if (gone === 'failed') return { type: 'error', error: k.lastError() };
      if (stopRequested()) return { type: 'cancelled' };
    }
  } finally {
    closeAll(k, slots);
  }
}

/** Through the name's mutex (waiting behind an exclusive holder or a waiting writer), then a free reader slot. */
function waitShared(job: WaiterJob): Outcome {
  const main = k.createMutex(job.name);
  if (main.handle === 0) return { reply: { type: 'error', error: main.error } };
  const names = slotNames(job.name, 'shared');
  for (;;) {
    const got = waitForAny([main.handle]);
    if ('type' in got) return closed({ reply: got }, [main.handle]);
    const joined = joinFamily(k, job.name, job.familyFile, 'shared');
    const slot = 'marker' in joined ? takeFree(names) : undefined;
    k.releaseMutex(main.handle);
    if ('held' in joined) return closed({ reply: { type: 'mismatch', held: joined.held } }, [main.handle]);
    if ('error' in joined) return closed({ reply: { type: 'error', error: joined.error } }, [main.handle]);
    if (slot !== undefined) {
      return closed(
        { acquired: { type: 'acquired', abandoned: slot.abandoned, slot: slot.index }, owned: slot.handle, close: [joined.marker] },
        [main.handle]
      );
    }
    k.closeHandle(joined.marker);
    Atomics.wait(control, CONTROL.CANCEL, 0, SLICE_MS); // all reader slots taken (rare): look again
    if (stopRequested()) return closed({ reply: { type: 'cancelled' } }, [main.handle]);
  }
}

/** The first slot freed (or its holder's death), then the name's mutex to join the family. */
function waitCounted(job: WaiterJob): Outcome {
  const slots: number[] = [];
  for (const name of slotNames(job.name, job.family!)) {
    const created = k.createMutex(name);
    if (created.handle === 0) return closed({ reply: { type: 'error', error: created.error, name } }, slots);
    slots.push(created.handle);
  }
  const main = k.createMutex(job.name);
  if (main.handle === 0) return closed({ reply: { type: 'error', error: main.error } }, slots);
  const all = [...slots, main.handle];
  const got = waitForAny(slots);
  if ('type' in got) return closed({ reply: got }, all);
  const slot = slots[got.index];
  const through = waitForAny([main.handle]);
  if ('type' in through) {
    k.releaseMutex(slot);
    return closed({ reply: through }, all);
  }
  const joined = joinFamily(k, job.name, job.familyFile, job.family!);
  k.releaseMutex(main.handle);
  if (!('marker' in joined)) {
    k.releaseMutex(slot);
    return closed({ reply: 'held' in joined ? { type: 'mismatch', held: joined.held } : { type: 'error', error: joined.error } }, all);
  }
  const acquired: WaiterReply = { type: 'acquired', abandoned: got.abandoned, slot: got.index };
  return closed(
    { acquired, owned: slot, close: [joined.marker] },
    all.filter((handle) => handle !== slot)
  );
}

/** `outcome`, once `handles` are closed. */
function closed(outcome: Outcome, handles: readonly number[]): Outcome {
  closeAll(k, handles);
  return outcome;
}

/** The first free mutex among `names`, taken (created or opened: the caller holds it, or closes nothing else). */
function takeFree(names: readonly string[]): { index: number; handle: number; abandoned: boolean } | undefined {
  for (const [index, name] of names.entries()) {
    const created = k.createMutex(name);
    if (created.handle === 0) continue;
    const result = k.wait(created.handle, 0);
    if (result === WAIT_OBJECT_0 || result === WAIT_ABANDONED)
      return { index, handle: created.handle, abandoned: result === WAIT_ABANDONED };
    k.closeHandle(created.handle);
  }
  return undefined;
}

/**
 * Waits in slices until one of `handles` is acquired (its index, and
 * whether its owner died), the wait is stopped, or it fails. A cancel wins
 * over an acquisition: it is listed first, and checked after each slice.
 */
function waitForAny(handles: readonly number[]): { index: number; abandoned: boolean } | WaiterReply {
  const listed = handles.slice(0, MAX_LISTED);
  const packed = packHandles([data.cancelEvent, ...listed]);
  for (;;) {
    const result = k.waitAny(packed, SLICE_MS);
    let got: { index: number; abandoned: boolean } | undefined;
    if (result > WAIT_OBJECT_0 && result <= WAIT_OBJECT_0 + listed.length) got = { index: result - WAIT_OBJECT_0 - 1, abandoned: false };
    else if (result > WAIT_ABANDONED && result <= WAIT_ABANDONED + listed.length)
      got = { index: result - WAIT_ABANDONED - 1, abandoned: true };
    else if (result === WAIT_TIMEOUT) got = tryUnlisted(handles, listed.length);
    else if (result !== WAIT_OBJECT_0) return { type: 'error', error: k.lastError() };
    if (stopRequested()) {
      if (got !== undefined) k.releaseMutex(handles[got.index]);
      return { type: 'cancelled' };
    }
    if (got !== undefined) return got;
  }
}

/** The handles past what one wait can list, tried without waiting. */
function tryUnlisted(handles: readonly number[], from: number): { index: number; abandoned: boolean } | undefined {
  for (let index = from; index < handles.length; index++) {
    const result = k.wait(handles[index], 0);
    if (result === WAIT_OBJECT_0 || result === WAIT_ABANDONED) return { index, abandoned: result === WAIT_ABANDONED };
  }
  return undefined;
}

/** Cancelled by an abort (CANCEL) or by the process exiting (EXIT). */
function stopRequested(): boolean {
  return Atomics.load(control, CONTROL.CANCEL) !== 0 || Atomics.load(control, CONTROL.EXIT) !== 0;
}

function hold(mutex: number, close: readonly number[]): void {
  while (Atomics.load(control, CONTROL.RELEASE) === 0 && Atomics.load(control, CONTROL.EXIT) === 0) {
    Atomics.wait(control, CONTROL.RELEASE, 0);
  }
  k.releaseMutex(mutex);
  k.closeHandle(mutex);
  closeAll(k, close);
  Atomics.store(control, CONTROL.RELEASE, 0);
  finish(undefined);
}

/** Back to idle; wakes a release() or cleanup() waiting for that. */
function finish(reply: WaiterReply | undefined): WaiterReply | undefined {
  Atomics.store(control, CONTROL.STATE, IDLE);
  Atomics.notify(control, CONTROL.STATE);
  return reply;
}
