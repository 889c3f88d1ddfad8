import { LockDriverError } from '../../shared/errors.js';
import { connectionOf, redacted, withTimeout, type Connection } from './client.js';

/**
 * The connection the driver opens itself from `url`, with ioredis if it is
 * installed, else node-redis. Connecting (DNS, TCP, TLS, AUTH, SELECT) is
 * bounded by `timeoutMs`; every failure is a LockDriverError that names the
 * server (never the password).
 */

type Loaded =
  { readonly flavour: 'ioredis'; readonly module: IoRedisModule } | { readonly flavour: 'node-redis'; readonly module: NodeRedisModule };

interface IoRedisModule {
  new (url: string, options: Record<string, unknown>): unknown;
}

interface NodeRedisModule {
  createClient(options: Record<string, unknown>): unknown;
}

/** ioredis, else node-redis (`redis`); a LockDriverError saying what to install when neither loads. */
export function loadClientModule(): Loaded {
  const failures: string[] = [];
  // Literal requires, so bundlers see both optional packages.
  const loaders = {
    ioredis: () => require('ioredis') as Record<string, unknown>,
    redis: () => require('redis') as Record<string, unknown>,
  };
  for (const name of ['ioredis', 'redis'] as const) {
    try {
      const module = loaders[name]();
      if (name === 'ioredis') return { flavour: 'ioredis', module: (module.default ?? module) as IoRedisModule };
      return { flavour: 'node-redis', module: module as unknown as NodeRedisModule };
    } catch (error) {
      const missing = (error as { code?: unknown }).code === 'MODULE_NOT_FOUND' && String((error as Error).message).includes(`'${name}'`);
      if (!missing) failures.push(`'${name}' cannot load: ${(error as Error).message}`);
    }
  }
  throw new LockDriverError(
    'ERR_DRIVER_UNAVAILABLE',
    failures.length > 0 ? failures.join('; ') : 'The redis driver needs a Redis client package with `url`: npm install ioredis (or redis)'
  );
}

/** Opens a connection to `url` and waits until it is ready (authenticated, database selected). */
export async function openConnection(loaded: Loaded, url: string, where: string, timeoutMs: number): Promise<Connection> {
  const client = newClient(loaded, url, timeoutMs);
  const connection = connectionOf(client);
  let failure: unknown;
  (client as { on(event: string, listener: (error: unknown) => void): void }).on('error', (error) => (failure ??= error));
  try {
    await withTimeout((client as { connect(): Promise<unknown> }).connect(), timeoutMs, where, 'connecting');
  } catch (error) {
    connection.close();
    throw new LockDriverError(
      'ERR_DRIVER_UNAVAILABLE',
      `Cannot connect to Redis at ${where}: ${describeFailure(failure ?? error)}`,
      redacted(failure ?? error)
    );
  }
  connection.unref();
  return connection;
}

function newClient(loaded: Loaded, url: string, timeoutMs: number): unknown {
  const retry = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 5), 1000);
  if (loaded.flavour === 'ioredis') {
    return new loaded.module(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      retryStrategy: retry,
      maxRetriesPerRequest: 1,
      connectionName: 'exclusive-process',
    });
  }
  return loaded.module.createClient({
    url,
    name: 'exclusive-process',
    socket: { connectTimeout: timeoutMs, reconnectStrategy: retry },
  });
}

/** The server's or the system's words, without a password a URL may carry. */
function describeFailure(error: unknown): string {
  const message = error instanceof AggregateError && error.errors.length > 0 ? error.errors.map(describeFailure).join('; ') : undefined;
  if (message !== undefined) return message;
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\/\/[^@/]*@/g, '//');
}
