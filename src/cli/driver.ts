import { InvalidArgumentError } from '../shared/errors.js';
import { parseOptions } from '../api/options.js';
import type { LockDriver } from '../drivers/types.js';
import { UsageError, type LockPlace } from './args.js';

/**
 * The driver named on the command line. The built-in ones come from the
 * library's own selection; `postgres` and `redis` are loaded only when asked
 * for, since they need optional packages (`pg`; `ioredis` or `redis`).
 */
export function driverFor(place: LockPlace): LockDriver {
  if (place.driver === 'redis') return redisDriver(place.redisUrl ?? process.env.REDIS_URL ?? 'redis://localhost:6379');
  if (place.driver !== 'postgres') return parseOptions({ driver: place.driver }).driver;
  const { postgres } = require('../drivers/postgres/index.js') as typeof import('../drivers/postgres/index.js');
  try {
    return postgres(place.databaseUrl === undefined ? {} : { connectionString: place.databaseUrl });
  } catch (error) {
    // A malformed --database-url is a command-line mistake (exit 2), not a failure of the tool.
    if (error instanceof InvalidArgumentError)
      throw new UsageError(`option '--database-url' ${error.message.replace(/^options\.connectionString /, '')}`);
    throw error;
  }
}

function redisDriver(url: string): LockDriver {
  const { redis } = require('../drivers/redis/index.js') as typeof import('../drivers/redis/index.js');
  try {
    return redis({ url });
  } catch (error) {
    // A malformed --redis-url (or $REDIS_URL) is a command-line mistake (exit 2).
    if (error instanceof InvalidArgumentError) throw new UsageError(`option '--redis-url' ${error.message.replace(/^options\.url /, '')}`);
    throw error;
  }
}
