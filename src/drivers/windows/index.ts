import { describe } from '../../shared/describe.js';
import { InvalidArgumentError, LockDriverError } from '../../shared/errors.js';
import { didYouMean } from '../../shared/suggest.js';
import { buildDriver } from './driver.js';
import type { SyncLockDriver } from '../types.js';

export { mutexName } from './mutex-name.js';
export { infoFileName } from './info-file.js';

/**
 * `windows()`: the Windows driver, a kernel named mutex per lock, which
 * Windows releases however its owner dies (`lock.abandoned`). The holder
 * record goes to an info file beside where the lock file would be. See
 * docs/internals/windows-mutex.md.
 */

/**
 * Namespace of the mutexes: `'local'` (this logon session) or `'global'`
 * (all sessions: services, other users, Remote Desktop). Default: `'local'`.
 *
 * @example
 * ```ts
 * const scope: WindowsScope = process.env.ALL_SESSIONS ? 'global' : 'local';
 * ```
 */
export type WindowsScope = 'local' | 'global';

/**
 * Options of {@link windows}.
 *
 * @example
 * ```ts
 * const options: WindowsDriverOptions = { scope: 'global' };
 * Exclusive.forever({ name: 'updater', driver: windows(options) });
 * ```
 */
export interface WindowsDriverOptions {
  /**
   * `'local'` puts the mutexes in the session's `Local\` namespace;
   * `'global'` in `Global\`, shared by every session (services, other users,
   * Remote Desktop). Creating `Global\` objects needs SeCreateGlobalPrivilege
   * (services and elevated administrators have it): without it the lock
   * throws a LockFileError with code `'ERR_LOCK_PERMISSION'`.
   * Default: `'local'`.
   */
  scope?: WindowsScope;
}

const instances = new Map<WindowsScope, SyncLockDriver>();

/**
 * The Windows named-mutex driver with a choice of namespace. One driver
 * object per scope and thread (calls with the same scope return the same
 * object, so in-process queueing and reentrancy work across calls).
 * Throws a LockDriverError `'ERR_DRIVER_UNSUPPORTED'` off Windows, and
 * `'ERR_DRIVER_UNAVAILABLE'` when the native binding cannot load.
 *
 * Default: `{ scope: 'local' }`, which is also what `driver: 'windows'`
 * (the default driver on Windows) uses.
 *
 * @example
 * ```ts
 * import { Exclusive, windows } from 'exclusive-process';
 * // One copy across all sessions of the machine (a service and a user's tray app):
 * Exclusive.forever({ name: 'updater', driver: windows({ scope: 'global' }), die: true });
 * ```
 */
export function windows(options?: WindowsDriverOptions): SyncLockDriver {
  const scope = parseScope(options);
  if (process.platform !== 'win32') {
    throw new LockDriverError('ERR_DRIVER_UNSUPPORTED', `The windows driver needs Windows; this is ${process.platform}.`);
  }
  let driver = instances.get(scope);
  if (driver === undefined) instances.set(scope, (driver = buildDriver(scope)));
  return driver;
}

/**
 * The default Windows driver (`scope: 'local'`), as chosen by
 * `driver: 'windows'`. Same object as `windows()`.
 *
 * @example
 * ```ts
 * const driver = createWindowsDriver(); // on Windows
 * driver.locate('nightly', undefined); // 'Local\\exclusive-process.nightly'
 * ```
 */
export function createWindowsDriver(): SyncLockDriver {
  return windows();
}

function parseScope(options: unknown): WindowsScope {
  if (options === undefined) return 'local';
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `windows() options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'scope') throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.${key} is not an option of windows()${didYouMean(key, ['scope'])} (known: scope)`);
  }
  const scope = (options as WindowsDriverOptions).scope;
  if (scope === undefined || scope === 'local' || scope === 'global') return scope ?? 'local';
  throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.scope must be 'local' or 'global', got ${describe(scope)}`);
}
