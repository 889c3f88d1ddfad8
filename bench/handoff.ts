import { fork, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import * as properLockfile from 'proper-lockfile';
import { Exclusive, exclusive } from '../src/index.js';
import type { FromPeer, ToPeer, Waiter } from './handoff-protocol.js';
import { sleep, summarize, type Summary } from './stats.js';

/**
 * Hand-off latency: a holder releases while a waiter waits; we measure from
 * just before the holder's release to the moment the waiter's acquisition
 * resolves. Across processes both ends read process.hrtime.bigint(), which
 * is CLOCK_MONOTONIC on Linux and so comparable between processes; the IPC
 * messages that coordinate the rounds are outside the measured interval.
 *
 * Hold times vary from 5 to ~200 ms, so a waiter that polls with a backoff
 * is caught at every phase of its schedule, as it would be in real use.
 */

export interface HandoffResult {
  readonly label: string;
  readonly summary: Summary;
}

const ROOT = resolve(__dirname, '..');
const ROUNDS = 30;
/** proper-lockfile with the retry library's default timing waits ~1 s per hand-off: a few rounds tell enough. */
const SLOW_ROUNDS = 5;

function holdMs(round: number): number {
  return 5 + ((round * 97) % 200);
}

/** The waiter process and a way to await its next message. */
class Peer {
  readonly #child: ChildProcess;
  readonly #inbox: FromPeer[] = [];
  #wake: (() => void) | undefined;
  readonly #exited: Promise<void>;

  constructor() {
    // The tsx loader, so the peer runs the TypeScript sources like this process does.
    this.#child = fork(join(__dirname, 'handoff-peer.ts'), [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child.on('message', (message: FromPeer) => {
      this.#inbox.push(message);
      this.#wake?.();
    });
    this.#exited = new Promise((resolve) =>
      this.#child.once('exit', () => {
        this.#wake?.();
        resolve();
      })
    );
  }

  send(message: ToPeer): void {
    this.#child.send(message);
  }

  async next<K extends FromPeer['kind']>(kind: K): Promise<Extract<FromPeer, { kind: K }>> {
    for (;;) {
      const message = this.#inbox.shift();
      if (message !== undefined) {
        if (message.kind !== kind) throw new Error(`hand-off peer sent ${message.kind}, expected ${kind}`);
        return message as Extract<FromPeer, { kind: K }>;
      }
      if (this.#child.exitCode !== null) throw new Error(`hand-off peer exited with code ${this.#child.exitCode}`);
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  async close(): Promise<void> {
    if (this.#child.exitCode === null) this.send({ kind: 'exit' });
    await this.#exited;
  }
}

interface Holder {
  /** Takes the lock at once (the peer released it before answering). */
  take(): void;
  /** Reads the clock, then releases; returns the time read. */
  release(): bigint;
}

function exclusiveHolder(name: string, dir: string): Holder {
  let lock: ReturnType<typeof Exclusive.lock> | undefined;
  return {
    take: () => void (lock = Exclusive.lock({ name, dir })),
    release: () => {
      const t0 = process.hrtime.bigint();
      void lock!.release();
      return t0;
    },
  };
}

function properLockfileHolder(file: string): Holder {
  const options = { realpath: false };
  return {
    take: () => void properLockfile.lockSync(file, options),
    release: () => {
      const t0 = process.hrtime.bigint();
      properLockfile.unlockSync(file, options);
      return t0;
    },
  };
}

async function crossProcess(peer: Peer, waiter: Waiter, holder: Holder, name: string, dir: string, rounds: number): Promise<Summary> {
  const latencies: number[] = [];
  const file = join(dir, name);
  for (let round = 0; round < rounds; round++) {
    holder.take();
    peer.send({ kind: 'wait', waiter, name, dir, file });
    await peer.next('ready');
    await sleep(holdMs(round));
    const t0 = holder.release();
    const t1 = BigInt((await peer.next('acquired')).t1);
    // The waiter must not have had the lock while we held it.
    if (t1 <= t0) throw new Error(`${waiter}: the waiter acquired before the holder released (t1 - t0 = ${t1 - t0} ns)`);
    latencies.push(Number(t1 - t0));
  }
  return summarize(latencies);
}

/** Labels of the rows, also used by the checks in bench/index.ts. */
export const LABELS = {
  exclusiveAsync: 'exclusive-process, 2 processes, async waiter (`wait: true`)',
  exclusiveSync: 'exclusive-process, 2 processes, sync waiter (`wait: true`, blocks its thread)',
  inProcess: 'exclusive-process, 2 async callers in 1 process',
  properTuned: 'proper-lockfile, 2 processes, retries {retries: 1000, minTimeout: 1, maxTimeout: 10}',
  properDefaults: 'proper-lockfile, 2 processes, retries: 10 (retry defaults: 1 s, then x2)',
} as const;

export async function crossProcessHandoffs(dir: string): Promise<HandoffResult[]> {
  const peer = new Peer();
  try {
    const results: HandoffResult[] = [];
    const run = async (label: string, waiter: Waiter, holder: Holder, name: string, rounds = ROUNDS): Promise<void> => {
      results.push({ label, summary: await crossProcess(peer, waiter, holder, name, dir, rounds) });
    };
    await run(LABELS.exclusiveAsync, 'exclusive-async', exclusiveHolder('handoff-async', dir), 'handoff-async');
    await run(LABELS.exclusiveSync, 'exclusive-sync', exclusiveHolder('handoff-sync', dir), 'handoff-sync');
    await run(LABELS.properTuned, 'proper-lockfile-tuned', properLockfileHolder(join(dir, 'pl-tuned')), 'pl-tuned');
    await run(
      LABELS.properDefaults,
      'proper-lockfile-defaults',
      properLockfileHolder(join(dir, 'pl-defaults')),
      'pl-defaults',
      SLOW_ROUNDS
    );
    return results;
  } finally {
    await peer.close();
  }
}

/** Two async callers of one exclusive function in one process: the in-process queue hands over. */
export async function inProcessHandoff(dir: string): Promise<HandoffResult> {
  const name = 'handoff-in-process';
  let t1 = 0n;
  const waiter = exclusive(
    async () => {
      t1 = process.hrtime.bigint();
    },
    { name, dir, wait: true }
  );
  const latencies: number[] = [];
  for (let round = 0; round < 50; round++) {
    const lock = await Exclusive.acquire({ name, dir });
    const waiting = waiter();
    await sleep(1 + (round % 5));
    const t0 = process.hrtime.bigint();
    void lock.release();
    await waiting;
    if (t1 <= t0) throw new Error(`in-process: the waiter ran before the holder released (t1 - t0 = ${t1 - t0} ns)`);
    latencies.push(Number(t1 - t0));
  }
  return { label: LABELS.inProcess, summary: summarize(latencies) };
}
