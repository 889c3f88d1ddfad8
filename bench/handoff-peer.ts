// The waiting side of the cross-process hand-off bench (bench/handoff.ts),
// started with an IPC channel. For each `wait` message it starts waiting for
// the lock, says `ready`, and once its acquisition resolves sends the
// CLOCK_MONOTONIC time (process.hrtime.bigint()) of that moment, after
// releasing the lock.
import * as properLockfile from 'proper-lockfile';
import { exclusive } from '../src/index.js';
import type { FromPeer, ToPeer, Waiter } from './handoff-protocol.js';

type Wait = Extract<ToPeer, { kind: 'wait' }>;

const send = (message: FromPeer): Promise<void> =>
  new Promise((resolve, reject) => process.send!(message, undefined, {}, (error) => (error ? reject(error) : resolve())));

/** Set by the exclusive functions' bodies: their first statement is the moment of acquisition. */
let acquiredAt = 0n;
const record = (): void => {
  acquiredAt = process.hrtime.bigint();
};

// Wrappers are made once per lock, as an application would (the first call resolves the lock file).
const wrappers = new Map<string, () => unknown>();
function exclusiveWaiter(message: Wait): () => unknown {
  const key = `${message.waiter}\0${message.name}`;
  let fn = wrappers.get(key);
  if (fn === undefined) {
    const options = { name: message.name, dir: message.dir, wait: true };
    fn = message.waiter === 'exclusive-async' ? exclusive(async () => record(), options) : exclusive(() => record(), options);
    wrappers.set(key, fn);
  }
  return fn;
}

/** proper-lockfile's retry settings per waiter kind (see bench/handoff.ts for why these). */
const RETRIES: Record<Extract<Waiter, `proper-lockfile-${string}`>, properLockfile.LockOptions['retries']> = {
  'proper-lockfile-defaults': 10,
  'proper-lockfile-tuned': { retries: 1000, minTimeout: 1, maxTimeout: 10 },
};

async function wait(message: Wait): Promise<void> {
  acquiredAt = 0n;
  const { waiter } = message;
  if (waiter === 'exclusive-async') {
    const done = exclusiveWaiter(message)() as Promise<void>;
    await new Promise((resolve) => setImmediate(resolve)); // past the first try: waiting now
    await send({ kind: 'ready' });
    await done; // resolves after the release
  } else if (waiter === 'exclusive-sync') {
    const fn = exclusiveWaiter(message);
    await send({ kind: 'ready' });
    fn(); // blocks this thread until acquired, then releases
  } else {
    const locking = properLockfile.lock(message.file, { realpath: false, retries: RETRIES[waiter] });
    await new Promise((resolve) => setTimeout(resolve, 1)); // past the first mkdir: retrying now
    await send({ kind: 'ready' });
    const release = await locking;
    record();
    await release();
  }
  await send({ kind: 'acquired', t1: acquiredAt.toString() });
}

process.on('message', (message: ToPeer) => {
  if (message.kind === 'exit') {
    process.disconnect();
    return;
  }
  wait(message).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
});
