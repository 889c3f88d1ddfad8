import { randomBytes } from 'node:crypto';
import { LockDriverError } from '../../shared/errors.js';
import { sleep } from '../../shared/sleep.js';
import { attemptUnlessAborted, keysOfResource, type Attempt } from './acquire.js';
import { unavailable, unlessAborted, withTimeout } from './client.js';
import { SCRIPTS } from './scripts.js';
import type { Link, Subscriber } from './link.js';
import type { DriverLock, HolderRecord } from '../types.js';

/** Pauses between the tries of a wait whose server was out of reach (a restart, a failover, the network), growing to the last. */
const UNREACHABLE_PAUSES_MS = [50, 100, 200, 400, 800, 1000];

/**
 * A wait that never polls in a loop: it listens to the lock's channel
 * (every release and withdrawn writer publishes there), then tries; when
 * busy it sleeps until a message, or until the soonest lease of a holder
 * ends (one timer: a holder that vanished without releasing), or the
 * signal. An exclusive waiter announces itself on each try, so new shared
 * holders queue behind it; the announcement lasts one lease, so it tries
 * again at least every half lease to renew it. A server out of reach
 * (ERR_DRIVER_UNAVAILABLE) does not end the wait: it tries again, backing
 * off, until it gets an answer or the wait ends (the core's look for the
 * holder then reports the server still out of reach).
 */
export async function waitLockOn(
  link: Link,
  resource: string,
  record: HolderRecord,
  signal: AbortSignal,
  leaseMs: number
): Promise<DriverLock | null> {
  const keys = keysOfResource(resource);
  let wakes = 0;
  let wake: (() => void) | undefined;
  const onMessage = (): void => {
    wakes++;
    wake?.();
  };
  const writer = record.mode === 'shared' || (record.limit ?? 1) > 1 ? '' : randomBytes(12).toString('base64url');
  let listening: Awaited<ReturnType<typeof listenOn>> | undefined;
  let unreachable = 0;
  try {
    for (;;) {
      if (signal.aborted) return null;
      const seen = wakes;
      let result: Attempt;
      try {
        if (listening?.subscriber.closed !== false) {
          listening?.stop();
          listening = undefined;
          listening = await unlessAborted(listenOn(link, keys.channel, onMessage), signal, (late) => late.stop());
          if (listening === undefined) return null;
        }
        const tried = await attemptUnlessAborted(link, resource, record, leaseMs, signal, writer);
        if (tried === undefined) return null;
        result = tried;
      } catch (error) {
        if (!(error instanceof LockDriverError) || error.code !== 'ERR_DRIVER_UNAVAILABLE') throw error;
        await sleep(UNREACHABLE_PAUSES_MS[Math.min(unreachable++, UNREACHABLE_PAUSES_MS.length - 1)], signal);
        continue;
      }
      unreachable = 0;
      if ('lock' in result) return result.lock;
      if (signal.aborted) return null;
      if (wakes !== seen) continue;
      const sleepMs = result.retryInMs < 0 ? leaseMs : result.retryInMs + 1;
      await sleep(writer === '' ? sleepMs : Math.min(sleepMs, leaseMs / 2), signal, (done) => (wake = done));
      wake = undefined;
    }
  } finally {
    listening?.stop();
    if (writer !== '') void withdraw(link, keys.writers, writer, keys.channel);
  }
}

/** Listens to `channel` on the driver's subscriber, bounded by the command timeout. */
async function listenOn(link: Link, channel: string, listener: () => void): Promise<{ subscriber: Subscriber; stop: () => void }> {
  const { where, commandTimeoutMs } = link.config;
  const doing = "subscribing to the lock's channel";
  const subscriber = await link.subscriber();
  try {
    return { subscriber, stop: await withTimeout(subscriber.listen(channel, listener), commandTimeoutMs, where, doing, (stop) => stop()) };
  } catch (error) {
    throw unavailable(where, doing, error);
  }
}

/** Takes a waiting writer's announcement back (and wakes the readers it held back). */
async function withdraw(link: Link, writers: string, writer: string, channel: string): Promise<void> {
  try {
    await link.run(SCRIPTS.withdraw, [writers], [writer, channel], 'withdrawing a waiting writer');
  } catch {
    // It ends with its lease.
  }
}
