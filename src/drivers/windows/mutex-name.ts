import { createHash } from 'node:crypto';
import { chosenDirectory, LOCK_FILE_SUFFIX, lockFileName, systemLockDirectory } from '../file/path.js';
import type { WindowsScope } from './index.js';

/**
 * The mutex name for a lock: `Local\` or `Global\`, then the lock file
 * name's encoding (`exclusive-process.` + the name with bytes outside
 * `[A-Za-z0-9._-]` %XX-encoded, long names cut and hashed), so it never
 * holds a backslash and stays under 200 of the 260 characters allowed.
 * When the lock directory (`dir` or `EXCLUSIVE_PROCESS_DIR`) is another
 * than the system default, `@` and a hash of it follow: as with lock files,
 * the same name in two directories is two locks, and in one directory
 * (however it was named) one lock. The info file is derived from this name
 * ({@link infoFileName}). Default `scope`: `'local'`.
 *
 * @example
 * ```ts
 * mutexName('backup: C:\\data', undefined); // 'Local\\exclusive-process.backup%3A%20C%3A%5Cdata'
 * mutexName('backup', 'D:\\locks', 'global'); // 'Global\\exclusive-process.backup@1f0c...' (16 hex digits)
 * ```
 */
export function mutexName(name: string, dir: string | undefined, scope: WindowsScope = 'local'): string {
  const base = lockFileName(name).slice(0, -LOCK_FILE_SUFFIX.length);
  const namespace = scope === 'global' ? 'Global\\' : 'Local\\';
  return `${namespace}${base}${directorySuffix(dir)}`;
}

/** `@` and a hash of the lock directory, or '' for the system default directory (also when `dir` names it). */
function directorySuffix(dir: string | undefined): string {
  const chosen = chosenDirectory(dir);
  if (chosen === undefined) return '';
  const path = comparablePath(chosen);
  if (path === comparablePath(systemLockDirectory())) return '';
  return `@${createHash('sha256').update(path).digest('hex').slice(0, 16)}`;
}

/** Windows paths ignore case. */
function comparablePath(path: string): string {
  return process.platform === 'win32' ? path.toLowerCase() : path;
}

/** The part of a mutex name that tells its lock directory apart: the `@` hash (an encoded lock name never holds `@`), '' for the system default. */
export function directoryKey(resource: string): string {
  const at = resource.lastIndexOf('@');
  return at < 0 ? '' : resource.slice(at);
}
