import { LockLostError } from '../../shared/errors.js';
import { scriptKeys, type LockKeys } from './keys.js';
import { SCRIPTS } from './scripts.js';
import type { Link } from './link.js';
import type { DriverLock, HolderRecord } from '../types.js';

/**
 * A lock held in Redis until released: its lease is extended every third
 * of `leaseMs`, and it ends on our side `leaseMs - margin` after the last
 * extension was sent (a reply only ever shortens what the server gave, so
 * our end comes before the server's even if this process was frozen
 * between). Whatever makes the holder unsure of its lease (an extension
 * refused or failed, the connection dropped, the end reached while frozen)
 * aborts `lost` with a LockLostError. See docs/internals/redis-lease.md.
 */

export interface HeldLockSpec {
  readonly resource: string;
  readonly keys: LockKeys;
  readonly token: string;
  readonly record: HolderRecord;
  readonly fence: bigint;
  /** When the acquiring script was sent (`performance.now()`): the server's lease started after it. */
  readonly leaseStart: number;
  readonly leaseMs: number;
  readonly details: NonNullable<HolderRecord['details']>;
}

/** Starts the extension and lease of a lock just acquired. */
export function holdLock(link: Link, spec: HeldLockSpec): DriverLock {
  const lease = new Lease(link, spec);
  return {
    lost: lease.lost,
    fencingToken: spec.fence,
    details: spec.details,
    release: () => lease.release(),
    contended: spec.record.mode === 'shared' ? () => lease.writersWaiting > 0 : undefined,
  };
}

/** Sends the compare-and-delete release of `token`, bounded; never throws (a lease that is not released ends by itself). */
export async function releaseToken(link: Link, keys: LockKeys, token: string): Promise<void> {
  try {
    await link.run(SCRIPTS.release, scriptKeys(keys), [token, keys.channel], 'releasing the lock');
  } catch {
    // The lease ends by itself on the server.
  }
}

class Lease {
  readonly #link: Link;
  readonly #spec: HeldLockSpec;
  readonly #controller = new AbortController();
  /** Our lease ends this much before the server's, for clock rates that differ a little. */
  readonly #margin: number;
  #deadline = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #extender: NodeJS.Timeout;
  #extending = false;
  #released = false;
  writersWaiting = 0;
  readonly #hold = { dropped: (why: string): void => this.#lose(why), atExit: (): void => this.releaseAtExit() };

  constructor(link: Link, spec: HeldLockSpec) {
    this.#link = link;
    this.#spec = spec;
    this.#margin = Math.min(500, Math.floor(spec.leaseMs / 10));
    this.#renew(spec.leaseStart);
    this.#extender = setInterval(() => void this.#extend(), Math.max(1, Math.floor(spec.leaseMs / 3)));
    this.#extender.unref();
    link.holds.add(this.#hold);
  }

  get lost(): AbortSignal {
    return this.#controller.signal;
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#stop();
    await releaseToken(this.#link, this.#spec.keys, this.#spec.token); // compare-and-delete: never another holder's
  }

  /** Sends the release in this tick, without waiting for it (process exit: no later tick runs). */
  releaseAtExit(): void {
    if (this.#released) return;
    this.#released = true;
    this.#stop();
    const connection = this.#link.opened;
    const { keys, token } = this.#spec;
    try {
      if (connection !== undefined) SCRIPTS.release.sendNow(connection, scriptKeys(keys), [token, keys.channel]);
    } catch {
      // The lease ends by itself.
    }
  }

  #stop(): void {
    clearInterval(this.#extender);
    clearTimeout(this.#timer);
    this.#link.holds.delete(this.#hold);
  }

  #lose(why: string, cause?: unknown): void {
    if (this.#released || this.#controller.signal.aborted) return;
    this.#stop();
    const { record, resource } = this.#spec;
    // Not released here: a lease the server may still have keeps others out until
    // the holder, told now, stops and releases (or until it ends), never while its code may still run.
    this.#controller.abort(new LockLostError(record.name, resource, why, cause));
  }

  /** Our lease now ends `leaseMs - margin` after `sentAt`, when the last command that set the server's lease was sent. */
  #renew(sentAt: number): void {
    const { leaseMs } = this.#spec;
    this.#deadline = sentAt + leaseMs - this.#margin;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#expired(), Math.max(0, this.#deadline - performance.now()));
    this.#timer.unref();
  }

  #expired(): void {
    this.#lose(
      `no extension of its ${this.#spec.leaseMs} ms lease was confirmed by Redis at ${this.#link.config.where} in time ` +
        '(the process was frozen or too busy, or Redis is out of reach), so another process may hold it now'
    );
  }

  async #extend(): Promise<void> {
    if (this.#extending || this.#released || this.#controller.signal.aborted) return;
    if (performance.now() >= this.#deadline) return this.#expired();
    this.#extending = true;
    const sentAt = performance.now();
    const { keys, token, leaseMs } = this.#spec;
    try {
      const reply = Number(await this.#link.run(SCRIPTS.extend, scriptKeys(keys), [token, String(leaseMs)], 'extending the lease'));
      if (this.#released) return;
      if (reply < 0) return this.#lose(`its lease had already ended on Redis at ${this.#link.config.where} (or the key was deleted)`);
      if (performance.now() >= sentAt + leaseMs - this.#margin) return this.#expired();
      this.writersWaiting = reply;
      this.#renew(sentAt);
    } catch (error) {
      this.#lose(`extending its lease failed: ${(error as Error).message}`, error);
    } finally {
      this.#extending = false;
    }
  }
}
