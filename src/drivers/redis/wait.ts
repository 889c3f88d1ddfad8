import { randomBytes } from 'node:crypto';
import { attempt, keysOfResource } from './acquire.js';
import { unavailable, withTimeout } from './client.js';
import { SCRIPTS } from './scripts.js';
import type { Link, Subscriber } from './link.js';
import type { DriverLock, HolderRecord } from '../types.js';

/**
 * A wait that never polls in a loop: it listens to the lock's channel
 * (every release and withdrawn writer publishes there), then tries; when
 * busy it sleeps until a message, or until the soonest lease of a holder
 * ends (one timer: a holder that vanished without releasing), or the
 * signal. An exclusive waiter announces itself on each try, so new shared
 * holders queue behind it; the announcement lasts one lease, so it tries
 * again at least every half lease to renew it.
 */
export async function waitLockOn(
  link: Link,
  resource: string,
  record: HolderRecord,
  signal: AbortSignal,
  leaseMs: number
): Promise<DriverLock | null> {
  if (signal.aborted) return null;
  const keys = keysOfResource(resource);
  let wakes = 0;
  let wake: (() => void) | undefined;
  const onMessage = (): void => {
    wakes++;
    wake?.();
  };
  let listening = await listenOn(link, keys.channel, onMessage);
  const writer = record.mode === 'shared' || (record.limit ?? 1) > 1 ? '' : randomBytes(12).toString('base64url');
  try {
    for (;;) {
      if (signal.aborted) return null;
      if (listening.subscriber.closed) {
        listening.stop();
        listening = await listenOn(link, keys.channel, onMessage);
      }
      const seen = wakes;
      const result = await attempt(link, resource, record, leaseMs, writer);
      if ('lock' in result) return result.lock;
      if (signal.aborted) return null;
      if (wakes !== seen) continue;
      const sleepMs = result.retryInMs < 0 ? leaseMs : result.retryInMs + 1;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, writer === '' ? sleepMs : Math.min(sleepMs, leaseMs / 2));
        signal.addEventListener('abort', done, { once: true });
        wake = done;
      });
    }
  } finally {
    listening.stop();
    if (writer !== '') void withdraw(link, keys.writers, writer, keys.channel);
  }
}

/** Listens to `channel` on the driver's subscriber, bounded by the command timeout. */
async function listenOn(link: Link, channel: string, listener: () => void): Promise<{ subscriber: Subscriber; stop: () => void }> {
  const { where, commandTimeoutMs } = link.config;
  const doing = "subscribing to the lock's channel";
  const subscriber = await link.subscriber();
  const listening = subscriber.listen(channel, listener);
  try {
    return { subscriber, stop: await withTimeout(listening, commandTimeoutMs, where, doing) };
  } catch (error) {
    void listening.then(
      (stop) => stop(),
      () => {}
    );
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
