import { LockDriverError } from '../../shared/errors.js';
import { oneOf, optionsRecord, type OptionsShape } from '../../shared/validate.js';
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

const WINDOWS_OPTIONS: OptionsShape = {
  known: ['scope'],
  notObject: 'windows() options must be an object',
  notAnOption: 'is not an option of windows()',
};

function parseScope(options: unknown): WindowsScope {
  return oneOf(optionsRecord(options, WINDOWS_OPTIONS).scope, 'scope', ['local', 'global'] as const) ?? 'local';
}
