import { unavailable, withTimeout, type Connection } from './client.js';
import type { Script } from './scripts.js';

/**
 * The driver's connections: the command connection (the user's client, or
 * one it opened from `url`) and, for waits and shared holds only, one
 * subscriber duplicated from it. Every command is bounded by
 * `commandTimeoutMs`, so an unreachable server fails with a typed error
 * instead of hanging.
 */

/** What the entry point resolved from the user's options. */
export interface LinkConfig {
  /** `host:port` (never the password), for messages. */
  readonly where: string;
  readonly commandTimeoutMs: number;
  /** The command connection: the user's client, or a new one connected (rejects with a LockDriverError). */
  readonly open: () => Promise<Connection>;
  /** True when the driver opened the connections and so closes them at exit. */
  readonly owned: boolean;
}

/** A held lock, told when the command connection drops (it can no longer be sure of its lease) and at process exit. */
export interface HeldLease {
  dropped(why: string): void;
  /** Sends the release without waiting for it. */
  atExit(): void;
}

export class Link {
  readonly config: LinkConfig;
  /** The holds that lose their lock when the command connection drops. */
  readonly holds = new Set<HeldLease>();
  #main: Promise<Connection> | undefined;
  #opened: Connection | undefined;
  #subscriber: Promise<Subscriber> | undefined;
  #current: Subscriber | undefined;

  constructor(config: LinkConfig) {
    this.config = config;
  }

  /** The command connection, opened once (again after a failed attempt). */
  main(): Promise<Connection> {
    this.#main ??= this.config.open().then(
      (connection) => {
        this.#opened = connection;
        connection.onDrop((why) => {
          // A connection of our own is not left retrying (its timers would keep the process alive): the next command opens a new one.
          if (this.config.owned && this.#opened === connection) this.#forget();
          for (const hold of [...this.holds]) hold.dropped(why);
        });
        return connection;
      },
      (error: unknown) => {
        this.#main = undefined;
        throw error;
      }
    );
    return this.#main;
  }

  #forget(): void {
    this.#opened?.close();
    this.#opened = undefined;
    this.#main = undefined;
  }

  /** The connection if it is open already (for the synchronous exit cleanup). */
  get opened(): Connection | undefined {
    return this.#opened;
  }

  /** Runs `script`, bounded by commandTimeoutMs; failures are LockDriverErrors naming `doing`. */
  run(script: Script, keys: readonly string[], args: readonly string[], doing: string): Promise<unknown> {
    return this.send((connection) => script.run(connection, keys, args), doing);
  }

  /**
   * Sends what `send` sends on the command connection, bounded by
   * commandTimeoutMs (whose timer also keeps the process alive meanwhile:
   * the connections do not); failures are LockDriverErrors naming `doing`.
   */
  async send(send: (connection: Connection) => Promise<unknown>, doing: string): Promise<unknown> {
    const { where, commandTimeoutMs } = this.config;
    try {
      const connection = this.#opened ?? (await withTimeout(this.main(), commandTimeoutMs, where, `connecting (${doing})`));
      return await withTimeout(send(connection), commandTimeoutMs, where, doing);
    } catch (error) {
      throw unavailable(where, doing, error);
    }
  }

  /** The subscriber connection, duplicated from the command connection on first use. */
  subscriber(): Promise<Subscriber> {
    this.#subscriber ??= (async () => {
      const { where, commandTimeoutMs } = this.config;
      try {
        const main = await withTimeout(this.main(), commandTimeoutMs, where, 'connecting');
        // One that connects after we gave up (node-redis retries until the server is back) is closed then, not left open.
        const connection = await withTimeout(main.duplicate(), commandTimeoutMs, where, 'opening a subscriber connection', (late) =>
          late.close()
        );
        connection.unref(); // waits keep the process alive with their own timers
        const subscriber = new Subscriber(connection, () => {
          if (this.#current === subscriber) this.#subscriber = undefined;
        });
        this.#current = subscriber;
        return subscriber;
      } catch (error) {
        this.#subscriber = undefined;
        throw unavailable(where, 'opening a subscriber connection', error);
      }
    })();
    return this.#subscriber;
  }

  /** Closes what the driver opened (synchronously: also at process exit). */
  close(): void {
    if (!this.config.owned) {
      void this.#subscriber?.then((subscriber) => subscriber.close()).catch(() => {});
      return;
    }
    this.#opened?.close();
    void this.#subscriber?.then((subscriber) => subscriber.close()).catch(() => {});
  }
}

/**
 * One pub/sub connection shared by every wait of the driver: a channel is
 * subscribed while someone listens to it. When the connection drops
 * (messages may have been missed) it is closed, not left to reconnect, and
 * every listener is woken: its next wait listens on a new one.
 */
export class Subscriber {
  readonly #connection: Connection;
  readonly #channels = new Map<string, { listeners: Set<(message: string) => void>; ready: Promise<void> }>();
  /** True once the connection dropped: listen again on `link.subscriber()`. */
  closed = false;
  /** Rejects when the connection drops: a subscription still unconfirmed then fails at once, not at its timeout. */
  readonly #dropped: Promise<never>;
  #drop: (error: Error) => void = () => {};

  constructor(connection: Connection, onClosed: () => void) {
    this.#connection = connection;
    this.#dropped = new Promise<never>((_, reject) => (this.#drop = reject));
    this.#dropped.catch(() => {});
    connection.onDrop((why) => {
      if (this.closed) return;
      this.closed = true;
      this.#drop(new Error(`the subscriber connection dropped: ${why}`));
      onClosed();
      connection.close();
      for (const { listeners } of this.#channels.values()) for (const listener of [...listeners]) listener('');
      this.#channels.clear();
    });
  }

  /** Listens to `channel` until the returned function is called; resolves once the server confirmed the subscription. */
  async listen(channel: string, listener: (message: string) => void): Promise<() => void> {
    let entry = this.#channels.get(channel);
    if (entry === undefined) {
      const listeners = new Set<(message: string) => void>();
      const ready = this.#connection.subscribe(channel, (message) => {
        for (const each of [...listeners]) each(message);
      });
      entry = { listeners, ready };
      this.#channels.set(channel, entry);
      ready.catch(() => this.#channels.get(channel) === entry && this.#channels.delete(channel));
    }
    entry.listeners.add(listener);
    const stop = (): void => this.#stop(channel, listener);
    try {
      await Promise.race([entry.ready, this.#dropped]);
    } catch (error) {
      stop();
      throw error;
    }
    return stop;
  }

  #stop(channel: string, listener: (message: string) => void): void {
    const entry = this.#channels.get(channel);
    if (entry === undefined || !entry.listeners.delete(listener) || entry.listeners.size > 0) return;
    this.#channels.delete(channel);
    void this.#connection.unsubscribe(channel).catch(() => {});
  }

  close(): void {
    this.closed = true;
    this.#connection.close();
  }
}
