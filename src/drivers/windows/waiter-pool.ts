import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { LockDriverError } from '../../shared/errors.js';
import type { Kernel32 } from '../../native/kernel32.js';
import { CONTROL, CONTROL_SLOTS, IDLE, type WaiterData, type WaiterJob, type WaiterReply } from './waiter-protocol.js';

/**
 * The driver's side of a waiter thread (see waiter.ts): starts it
 * on first use (about 30 ms, paid only by a lock that has to wait), hands it
 * one wait at a time, and releases through it synchronously. Idle waiters
 * are reused and never keep the process alive; a waiting one does, as any
 * pending timer would.
 */

/** How long release() blocks for the waiter to let go before giving up on it (it never takes this long). */
const RELEASE_TIMEOUT_MS = 10_000;
/** How long exit cleanup waits for a waiter to let go. */
const EXIT_TIMEOUT_MS = 1_000;

let live = 0;

/** Waiter threads of this thread that are started and not yet closed or dead (for tests). */
export function liveWaiters(): number {
  return live;
}

export class Waiter {
  readonly #k: Kernel32;
  readonly #worker: Worker;
  readonly #control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
  readonly #cancelEvent: number;
  #state: 'idle' | 'waiting' | 'holding' | 'dead' = 'idle';
  #settle: ((reply: WaiterReply | Error) => void) | undefined;
  #lost: AbortController | undefined;

  constructor(k: Kernel32) {
    live++;
    this.#k = k;
    this.#cancelEvent = k.createEvent();
    const data: WaiterData = { control: this.#control.buffer, cancelEvent: this.#cancelEvent };
    // The compiled .js next to this file, or the .ts one under a TypeScript loader (workers inherit execArgv).
    this.#worker = new Worker(join(__dirname, `waiter${extname(__filename)}`), { workerData: data, stdout: false, stderr: false });
    this.#worker.unref();
    this.#worker.on('message', (reply: WaiterReply) => {
      if (this.#state === 'dead') return; // exit cleanup already settled it
      this.#state = reply.type === 'acquired' ? 'holding' : 'idle';
      if (reply.type === 'acquired') this.#lost = new AbortController();
      this.#worker.unref();
      this.#done(reply);
    });
    this.#worker.on('error', (error) => this.#die(error));
    this.#worker.on('exit', () => this.#die(new Error('The waiter thread exited.')));
  }

  /** True when a new wait may be handed to it. */
  get idle(): boolean {
    return this.#state === 'idle';
  }

  /** True once its thread is gone (closed, failed, or stopped at exit): drop it. */
  get dead(): boolean {
    return this.#state === 'dead';
  }

  /** Ends an idle waiter's thread and frees its event (a retired spare). */
  close(): void {
    if (this.#state !== 'idle') return;
    this.#markDead();
    void this.#worker.terminate();
    this.#k.closeHandle(this.#cancelEvent);
  }

  #markDead(): void {
    if (this.#state !== 'dead') live--;
    this.#state = 'dead';
  }

  /** Aborted if the thread holding the lock ends (the OS then treats the mutex as abandoned). */
  get lost(): AbortSignal | undefined {
    return this.#lost?.signal;
  }

  /** Waits as `job` says until the lock is acquired (then held by this waiter) or `signal` aborts. */
  wait(job: WaiterJob, signal: AbortSignal): Promise<WaiterReply> {
    this.#state = 'waiting';
    Atomics.store(this.#control, CONTROL.CANCEL, 0);
    this.#k.resetEvent(this.#cancelEvent);
    const cancel = (): void => {
      Atomics.store(this.#control, CONTROL.CANCEL, 1);
      this.#k.setEvent(this.#cancelEvent);
    };
    return new Promise<WaiterReply>((resolve, reject) => {
      this.#settle = (reply) => {
        signal.removeEventListener('abort', cancel);
        if (reply instanceof Error) reject(reply);
        else resolve(reply);
      };
      signal.addEventListener('abort', cancel, { once: true });
      this.#worker.ref();
      this.#worker.postMessage(job);
      if (signal.aborted) cancel();
    });
  }

  /** Releases the held mutex on the waiter thread; returns once it is released. */
  release(): void {
    if (this.#state !== 'holding') return;
    Atomics.store(this.#control, CONTROL.RELEASE, 1);
    Atomics.notify(this.#control, CONTROL.RELEASE);
    if (!this.#awaitIdle(RELEASE_TIMEOUT_MS)) {
      // Unreachable in practice; ending the thread makes Windows release (abandon) the mutex.
      this.#markDead();
      void this.#worker.terminate();
      return;
    }
    this.#lost = undefined;
    this.#state = 'idle';
  }

  /** At exit: stops a wait, releases a held mutex, and waits (briefly) until done. */
  stop(): void {
    if (this.#state === 'dead') return;
    Atomics.store(this.#control, CONTROL.EXIT, 1);
    this.#k.setEvent(this.#cancelEvent);
    Atomics.notify(this.#control, CONTROL.RELEASE);
    if (this.#state !== 'idle') this.#awaitIdle(EXIT_TIMEOUT_MS);
    this.#markDead();
  }

  #awaitIdle(timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const state = Atomics.load(this.#control, CONTROL.STATE);
      if (state === IDLE) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.#control, CONTROL.STATE, state, left);
    }
  }

  #done(reply: WaiterReply | Error): void {
    const settle = this.#settle;
    this.#settle = undefined;
    settle?.(reply);
  }

  #die(error: Error): void {
    if (this.#state === 'dead' && this.#settle === undefined) return;
    const wasHolding = this.#state === 'holding';
    this.#markDead();
    this.#done(new LockDriverError('ERR_DRIVER_UNAVAILABLE', `The named-mutex waiter thread failed: ${error.message}`, error));
    if (wasHolding) this.#lost?.abort(new Error('The thread holding the lock ended; Windows released the mutex as abandoned.'));
  }
}
