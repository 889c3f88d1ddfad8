import { describe } from '../shared/describe.js';
import { InvalidArgumentError, LockDriverError } from '../shared/errors.js';
import { didYouMean } from '../shared/suggest.js';
import type { DriverName, LockDriver } from './types.js';

/**
 * The one place that picks a driver: by name, or the platform's own. Drivers
 * are created once per process (per thread) and loaded lazily, so the
 * Windows driver is never loaded on Linux and vice versa.
 *
 * There is no silent fallback to the portable driver where the native
 * binding cannot load (`node --no-addons`, the permission model, Deno
 * without FFI): the default driver then fails with ERR_DRIVER_UNAVAILABLE,
 * whose message says how to choose `portable`. A process that switched
 * drivers on its own would share lock names with processes it may not
 * exclude (outside Linux, see portable/index.ts).
 */

const drivers = new Map<DriverName, LockDriver>();

const factories: Record<DriverName, () => LockDriver> = {
  posix: () => (require('./posix/index.js') as typeof import('./posix/index.js')).createPosixDriver(),
  windows: () => (require('./windows/index.js') as typeof import('./windows/index.js')).createWindowsDriver(),
  portable: () => (require('./portable/index.js') as typeof import('./portable/index.js')).createPortableDriver(),
};

/** The driver called `name`, or the platform's default when `name` is undefined. */
export function driverByName(name: string | undefined): LockDriver {
  if (name === undefined) return defaultDriver();
  if (!Object.hasOwn(factories, name)) throw unknownDriver(name);
  return instance(name as DriverName);
}

/**
 * The error for a driver name that is not built in, pointing at the fix:
 * the postgres driver is an object from its own entry point (so `pg` stays
 * optional), and a near miss gets its spelling.
 */
function unknownDriver(name: string): InvalidArgumentError {
  const refused = `options.driver must be 'posix', 'windows', 'portable' or a driver object, got ${describe(name)}`;
  if (/^postgres(ql)?$|^pg$/i.test(name)) {
    return new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `${refused}: the postgres driver is an object; import { postgres } from 'exclusive-process/postgres' and pass driver: postgres({ connectionString })`
    );
  }
  return new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${refused}${didYouMean(name, Object.keys(factories))}`);
}

function instance(name: DriverName): LockDriver {
  let driver = drivers.get(name);
  if (driver === undefined) {
    if (name === 'windows' && process.platform !== 'win32') {
      throw new LockDriverError('ERR_DRIVER_UNSUPPORTED', `The windows driver needs Windows; this is ${process.platform}.`);
    }
    if (name === 'posix' && process.platform === 'win32') {
      throw new LockDriverError('ERR_DRIVER_UNSUPPORTED', 'The posix driver does not run on Windows; use the windows or portable driver.');
    }
    driver = factories[name]();
    drivers.set(name, driver);
  }
  return driver;
}

function defaultDriver(): LockDriver {
  return instance(process.platform === 'win32' ? 'windows' : 'posix');
}
