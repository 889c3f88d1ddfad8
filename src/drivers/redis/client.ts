import { LockDriverError } from '../../shared/errors.js';

/**
 * One interface over the two Redis clients the driver takes, ioredis and
 * node-redis (v4+): raw commands, a duplicate for pub/sub, and the events
 * that say a connection dropped or came back. A client given by the user is
 * used as is; only what the driver duplicates from it is its own to close.
 */

/** The parts of an ioredis client (`Redis` or `Cluster`) the driver uses. */
interface IoRedisLike {
  readonly status: string;
  readonly stream?: { unref?(): void };
  call(command: string, ...args: string[]): Promise<unknown>;
  duplicate(): IoRedisLike;
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  disconnect(): void;
}

/** The parts of a node-redis (v4+) client the driver uses. */
interface NodeRedisLike {
  readonly isOpen: boolean;
  sendCommand(args: readonly string[]): Promise<unknown>;
  duplicate(): NodeRedisLike;
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: (message: string, channel: string) => void): Promise<unknown>;
  unsubscribe(channel: string, listener?: (message: string, channel: string) => void): Promise<unknown>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  destroy?(): void;
  disconnect?(): Promise<void>;
  unref?(): void;
}

/** A connection as the driver sees it, whichever client is behind it. */
export interface Connection {
  readonly flavour: 'ioredis' | 'node-redis';
  /** Sends one command (`['EVALSHA', sha, ...]`); the reply as the client decodes it (RESP2 types). */
  command(args: readonly string[]): Promise<unknown>;
  /** Calls `listener` whenever the connection drops (it may come back: the client reconnects). */
  onDrop(listener: (why: string) => void): void;
  /** Calls `listener` whenever the connection is ready again after a drop. */
  onReady(listener: () => void): void;
  /** A new connection to the same server (same options), for pub/sub. */
  duplicate(): Promise<Connection>;
  /** Subscribes to `channel`; `listener` gets each message of it. */
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Closes the connection now (not for a user's client). */
  close(): void;
  /** Lets the process end while this connection is open and idle (pending commands are kept alive by their timeouts). */
  unref(): void;
}

/** The client's flavour, or undefined when `client` is neither an ioredis nor a node-redis client. */
export function flavourOf(client: unknown): Connection['flavour'] | undefined {
  if (typeof client !== 'object' || client === null) return undefined;
  const c = client as Record<string, unknown>;
  if (typeof c.call === 'function' && typeof c.duplicate === 'function' && typeof c.status === 'string') return 'ioredis';
  if (typeof c.sendCommand === 'function' && typeof c.duplicate === 'function' && typeof c.connect === 'function') return 'node-redis';
  return undefined;
}

/** Wraps a client already checked by flavourOf(). */
export function connectionOf(client: unknown): Connection {
  return flavourOf(client) === 'ioredis' ? ioredisConnection(client as IoRedisLike) : nodeRedisConnection(client as NodeRedisLike);
}

/** The error's message; node-redis rejects some commands of a dropped connection with an empty one: then its name. */
function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.message !== '' ? error.message : `${error.name} (no message: the connection was lost)`;
}

function ioredisConnection(client: IoRedisLike): Connection {
  const channels = new Map<string, (message: string) => void>();
  let listening = false;
  return {
    flavour: 'ioredis',
    command: ([name, ...args]) => client.call(name, ...args),
    onDrop: (listener) => {
      client.on('close', () => listener('the connection to Redis closed'));
    },
    onReady: (listener) => {
      client.on('ready', () => listener());
    },
    duplicate: () => {
      const copy = client.duplicate();
      copy.on('error', () => {}); // reported through the lost locks and failed commands, not as a crash
      return Promise.resolve(ioredisConnection(copy));
    },
    subscribe: async (channel, listener) => {
      if (!listening) {
        listening = true;
        client.on('message', (...args: unknown[]) => channels.get(args[0] as string)?.(String(args[1])));
      }
      channels.set(channel, listener);
      await client.subscribe(channel);
    },
    unsubscribe: async (channel) => {
      channels.delete(channel);
      await client.unsubscribe(channel);
    },
    close: () => client.disconnect(),
    unref: () => {
      client.stream?.unref?.();
      client.on('connect', () => client.stream?.unref?.());
    },
  };
}

function nodeRedisConnection(client: NodeRedisLike): Connection {
  return {
    flavour: 'node-redis',
    command: (args) => client.sendCommand(args),
    onDrop: (listener) => {
      client.on('reconnecting', () => listener('the connection to Redis dropped'));
      client.on('end', () => listener('the connection to Redis was closed'));
    },
    onReady: (listener) => {
      client.on('ready', () => listener());
    },
    duplicate: async () => {
      const copy = client.duplicate();
      copy.on('error', () => {}); // as above
      try {
        await copy.connect();
      } catch (error) {
        nodeRedisConnection(copy).close();
        throw error;
      }
      return nodeRedisConnection(copy);
    },
    subscribe: async (channel, listener) => {
      await client.subscribe(channel, (message) => listener(message));
    },
    unsubscribe: async (channel) => {
      await client.unsubscribe(channel);
    },
    close: () => {
      if (typeof client.destroy === 'function') client.destroy();
      else void client.disconnect?.().catch(() => {});
    },
    unref: () => client.unref?.(),
  };
}

/** The error for a command that failed or took too long: the server is out of reach (or refused us). */
export function unavailable(where: string, doing: string, error: unknown): LockDriverError {
  if (error instanceof LockDriverError) return error;
  return new LockDriverError('ERR_DRIVER_UNAVAILABLE', `Redis at ${where} failed while ${doing}: ${messageOf(error)}`, redacted(error));
}

/** The client's error without what it carries besides its message and name (ioredis attaches the failed command: AUTH's password). */
export function redacted(error: unknown): Error {
  const copy = new Error(messageOf(error));
  if (error instanceof Error) copy.name = error.name;
  return copy;
}

/**
 * `promise`, or undefined as soon as `signal` aborts (at once if it has):
 * what `promise` gives later goes to `late` (a lock taken meanwhile is
 * given back there).
 */
export async function unlessAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  late: (value: T) => void
): Promise<T | undefined> {
  if (signal === undefined) return promise;
  let stop = (): void => {};
  const aborted = new Promise<undefined>((resolve) => {
    stop = () => resolve(undefined);
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
  });
  try {
    const settled = await Promise.race([promise.then((value) => ({ value })), aborted]);
    if (settled !== undefined) return settled.value;
    promise.then(late, () => {});
    return undefined;
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/**
 * `promise`, or a LockDriverError once `ms` have passed (the command may
 * still complete later: what it gives then goes to `late`, to be closed or
 * stopped).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, where: string, doing: string, late?: (value: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      if (late !== undefined) promise.then(late, () => {});
      reject(new LockDriverError('ERR_DRIVER_UNAVAILABLE', `Redis at ${where} did not answer within ${ms} ms while ${doing}`));
    }, ms);
  });
  return Promise.race([promise, timedOut]).finally(() => clearTimeout(timer));
}
