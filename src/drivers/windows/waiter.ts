import { parentPort, workerData } from 'node:worker_threads';
import { loadKernel32, WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT } from '../../native/kernel32.js';
import { CONTROL, HOLDING, IDLE, SLICE_MS, WAITING, type WaiterData, type WaiterJob, type WaiterReply } from './waiter-protocol.js';

/**
 * The waiter thread of the Windows driver (a worker_threads worker). A
 * mutex belongs to the thread that acquired it, so the thread that waits
 * must also hold it until release: this one does, one lock at a time.
 *
 * - Waiting: WaitForMultipleObjects on [cancel event, mutex] in slices, so
 *   an abort (the event) is seen at once and process exit never finds the
 *   thread stuck in native code for more than SLICE_MS.
 * - Holding: blocked in Atomics.wait until the owning thread's release()
 *   sets RELEASE; it then releases and acknowledges, so release() stays
 *   synchronous. Atomics.wait is interrupted by worker termination.
 */

const k = loadKernel32();
const data = workerData as WaiterData;
const control = new Int32Array(data.control);
const port = parentPort!;

port.on('message', (job: WaiterJob) => {
  const reply = run(job);
  if (reply !== undefined) port.postMessage(reply);
});

function run(job: WaiterJob): WaiterReply | undefined {
  const created = k.createMutex(job.name);
  if (created.handle === 0) return finish({ type: 'error', error: created.error });
  const mutex = created.handle;
  const handles = Buffer.alloc(16);
  handles.writeBigInt64LE(BigInt(data.cancelEvent), 0); // first: a cancel wins over an acquisition
  handles.writeBigInt64LE(BigInt(mutex), 8);
  Atomics.store(control, CONTROL.STATE, WAITING);
  for (;;) {
    const result = k.waitAny(handles, SLICE_MS);
    const acquired = result === WAIT_OBJECT_0 + 1 || result === WAIT_ABANDONED + 1;
    if (stopRequested()) {
      if (acquired) k.releaseMutex(mutex);
      k.closeHandle(mutex);
      return finish({ type: 'cancelled' });
    }
    if (acquired) {
      Atomics.store(control, CONTROL.STATE, HOLDING);
      port.postMessage({ type: 'acquired', abandoned: result === WAIT_ABANDONED + 1 } satisfies WaiterReply);
      hold(mutex);
      return undefined;
    }
    if (result !== WAIT_TIMEOUT && result !== WAIT_OBJECT_0) {
      const error = k.lastError();
      k.closeHandle(mutex);
      return finish({ type: 'error', error });
    }
  }
}

/** Cancelled by an abort (CANCEL) or by the process exiting (EXIT). */
function stopRequested(): boolean {
  return Atomics.load(control, CONTROL.CANCEL) !== 0 || Atomics.load(control, CONTROL.EXIT) !== 0;
}

function hold(mutex: number): void {
  while (Atomics.load(control, CONTROL.RELEASE) === 0 && Atomics.load(control, CONTROL.EXIT) === 0) {
    Atomics.wait(control, CONTROL.RELEASE, 0);
  }
  k.releaseMutex(mutex);
  k.closeHandle(mutex);
  Atomics.store(control, CONTROL.RELEASE, 0);
  finish(undefined);
}

/** Back to idle; wakes a release() or cleanup() waiting for that. */
function finish(reply: WaiterReply | undefined): WaiterReply | undefined {
  Atomics.store(control, CONTROL.STATE, IDLE);
  Atomics.notify(control, CONTROL.STATE);
  return reply;
}
