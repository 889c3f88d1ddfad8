import { InvalidArgumentError } from '../shared/errors.js';
import { parseOptions } from '../api/options.js';
import type { LockDriver } from '../drivers/types.js';
import { UsageError, type LockPlace } from './args.js';

/**
 * The driver named on the command line. The built-in ones come from the
 * library's own selection; `postgres` is loaded only when asked for, since it
 * needs the optional `pg` package.
 */
export function driverFor(place: LockPlace): LockDriver {
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
