import { closeSync, constants, fchmodSync, fstatSync, lstatSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { LockFileError } from '../../shared/errors.js';
import { decodeRecord } from '../../shared/holder-record.js';
import { DIR_OPTION, inLockDirectory, notADirectory } from './path.js';
import type { HolderRecord } from '../types.js';

/**
 * Opening lock files safely in directories other users can write to (/tmp,
 * /run/lock). Shared by the file-based drivers.
 *
 * - Never follows a symlink (O_NOFOLLOW) and refuses anything but a regular
 *   file with one link, so a planted symlink, hard link or FIFO cannot make
 *   us open (let alone write) a file outside the lock directory.
 * - Opens an existing file without O_CREAT first: in a sticky world-writable
 *   directory Linux refuses O_CREAT on another user's file
 *   (fs.protected_regular) even when plain opening it would be allowed.
 * - Creates with O_EXCL and never truncates: the content is only written by
 *   whoever holds the lock.
 * - Creates files LOCK_FILE_MODE (0644) whatever the umask: another user must
 *   be able to open (so flock) the file, and read who holds it.
 * - Needs only read access: flock(2) works on a read-only descriptor, so
 *   another user's file (0644 in a shared sticky directory such as /tmp or
 *   Debian's /run/lock) is opened read-only and still locked; only the holder
 *   record is then not written. Asking who holds a lock always opens read-only.
 */

export interface OpenLockFile {
  readonly fd: number;
  readonly dev: number;
  readonly ino: number;
  /** False when opened read-only (another user's file): it can be locked, but its record cannot be written. */
  readonly writable: boolean;
}

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
// O_NONBLOCK: opening a planted FIFO must not hang; it changes nothing for regular files.
const SAFE = O_NOFOLLOW | O_NONBLOCK;
/**
 * Linux's O_PATH (not in fs.constants): a descriptor naming a file without
 * read access to it, enough for fstat and /proc/self/fdinfo, so /proc/locks
 * can say who holds a file we may not read. 0 elsewhere.
 */
const O_PATH = process.platform === 'linux' ? 0o10000000 : 0;

/** The mode of every lock file and claim, whatever the umask: others read the holder record, and open the file to lock it. */
export const LOCK_FILE_MODE = 0o644;
/** How long opening a file we may not read is retried: a file just created is made readable by its creator right after. */
const UNREADABLE_RETRIES = 5;
const UNREADABLE_RETRY_MS = 2;

/**
 * Creates `path` exclusively (O_EXCL, never following a symlink) with
 * `flags`, and gives it LOCK_FILE_MODE at once: open()'s mode is cut by the
 * umask (077 gives 0600, which would lock other users out, or blind them).
 *
 * @example
 * ```ts
 * const fd = createExclusive('/run/lock/exclusive-process.x.lock', constants.O_RDWR); // 0644 even under umask 077
 * ```
 */
export function createExclusive(path: string, flags: number): number {
  const fd = inLockDirectory(dirname(path), () => openSync(path, flags | O_CREAT | O_EXCL | O_NOFOLLOW, LOCK_FILE_MODE));
  try {
    fchmodSync(fd, LOCK_FILE_MODE);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

/**
 * Opens (creating if needed) the lock file at `path` for locking: read-write
 * when this user may write it, else read-only (the lock works the same; the
 * holder record is not written).
 */
export function openLockFile(path: string): OpenLockFile {
  for (;;) {
    let opened: { fd: number; writable: boolean } | undefined;
    try {
      opened = openForLocking(path);
    } catch (error) {
      if (code(error) !== 'ENOENT') throw lockFileError(error, path);
      try {
        opened = { fd: createExclusive(path, O_RDWR | O_NONBLOCK), writable: true };
      } catch (createError) {
        if (code(createError) === 'EEXIST') continue; // another process created it first: open theirs
        throw lockFileError(createError, path);
      }
    }
    const file = checkRegular(opened.fd, path, opened.writable);
    if (file !== undefined) return file; // else it was removed as we opened it: open the new one
  }
}

/** Opens an existing file read-write, or read-only when this user may not write it (another user's 0644 file). */
function openForLocking(path: string): { fd: number; writable: boolean } {
  try {
    return { fd: openSync(path, O_RDWR | SAFE), writable: true };
  } catch (error) {
    if (code(error) !== 'EACCES' && code(error) !== 'EPERM' && code(error) !== 'EROFS') throw error;
    return { fd: openReadOnly(path), writable: false };
  }
}

/** Opens `path` read-only; an EACCES is retried briefly, in case another user's process has just created it and not yet set its mode. */
function openReadOnly(path: string): number {
  for (let retry = 0; ; retry++) {
    try {
      return openSync(path, O_RDONLY | SAFE);
    } catch (error) {
      if (code(error) !== 'EACCES' || retry >= UNREADABLE_RETRIES) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, UNREADABLE_RETRY_MS);
    }
  }
}

/** Opens an existing lock file read-only, without creating it (for asking who holds it); `undefined` when there is none. */
export function openExistingLockFile(path: string): OpenLockFile | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | SAFE);
  } catch (error) {
    if (code(error) === 'ENOENT') return undefined;
    throw lockFileError(error, path);
  }
  return checkRegular(fd, path, false);
}

/** An existing file opened to ask who holds it: `readable` false when only located (O_PATH), so its record cannot be read. */
export interface LocatedLockFile extends OpenLockFile {
  readonly readable: boolean;
}

/**
 * Opens an existing lock file to ask who holds it, never creating it:
 * read-only, or on Linux, when this user may not read it (another user's
 * 0600 file), by O_PATH, which needs no access to the file and still lets
 * /proc/locks name its flock holder. Undefined when there is none.
 *
 * @example
 * ```ts
 * const file = locateLockFile(path); // { fd, dev, ino, writable: false, readable: false } for root's 0600 file, as nobody
 * ```
 */
export function locateLockFile(path: string): LocatedLockFile | undefined {
  let fd: number;
  let readable = true;
  try {
    fd = openSync(path, O_RDONLY | SAFE);
  } catch (error) {
    if (code(error) === 'ENOENT') return undefined;
    if (O_PATH === 0 || (code(error) !== 'EACCES' && code(error) !== 'EPERM')) throw lockFileError(error, path);
    try {
      fd = openSync(path, O_PATH | O_NOFOLLOW);
      readable = false;
    } catch (pathError) {
      if (code(pathError) === 'ENOENT') return undefined;
      throw lockFileError(error, path);
    }
  }
  const file = checkRegular(fd, path, false);
  return file === undefined ? undefined : { ...file, readable };
}

/**
 * The open file if it is a regular file with one link; undefined (closed)
 * when it has none: a process cleaning up unlinked it just after we opened it.
 */
function checkRegular(fd: number, path: string, writable: boolean): OpenLockFile | undefined {
  const stat = fstatSync(fd);
  if (stat.isFile() && stat.nlink === 0) {
    closeSync(fd);
    return undefined;
  }
  if (!stat.isFile() || stat.nlink !== 1) {
    closeSync(fd);
    const what = stat.isFile() ? `has ${stat.nlink} hard links` : 'is not a regular file';
    throw new LockFileError(
      'ERR_LOCK_FILE_UNSAFE',
      path,
      `The lock file ${path} ${what}; refusing to use it. Remove it, or use a directory only you can write (${DIR_OPTION}).`
    );
  }
  return { fd, dev: stat.dev, ino: stat.ino, writable };
}

/** Writes the holder record at the start of the file. Errors are ignored: the record is informational. */
export function writeRecord(fd: number, bytes: Buffer): void {
  try {
    writeSync(fd, bytes, 0, bytes.length, 0);
  } catch {
    // A full disk must not turn a held lock into a failure.
  }
}

/** Reads the file's content (the record), up to MAX_RECORD_BYTES. */
export function readHead(fd: number): Buffer {
  try {
    // The whole record: a lock name may be 100 000 characters (escaped in
    // JSON, up to 600 000 bytes), and a cut record must not read as garbage.
    const buffer = Buffer.alloc(Math.min(fstatSync(fd).size, MAX_RECORD_BYTES));
    let length = 0;
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, length);
      if (read === 0) break;
      length += read;
    }
    return buffer.subarray(0, length);
  } catch {
    return Buffer.alloc(0);
  }
}

/** The most of a lock file ever read: more than any record we write (see MAX_NAME_LENGTH). */
const MAX_RECORD_BYTES = 1024 * 1024;

/** The holder record in the lock file at `path`, without creating or locking it (null: none readable). */
export function readRecordAt(path: string): HolderRecord | null {
  const file = openExistingLockFile(path);
  if (file === undefined) return null;
  try {
    return decodeRecord(readHead(file.fd));
  } finally {
    closeSync(file.fd);
  }
}

/** Turns a system error on a lock file into a {@link LockFileError} that names the path and the fix. */
export function lockFileError(error: unknown, path: string): LockFileError {
  if (error instanceof LockFileError) return error;
  const c = code(error) ?? 'unknown error';
  switch (c) {
    case 'ELOOP':
    case 'EMLINK':
      return new LockFileError(
        'ERR_LOCK_FILE_UNSAFE',
        path,
        `The lock file ${path} is a symbolic link; refusing to follow it. Remove it, or use a directory only you can write (${DIR_OPTION}).`,
        error
      );
    case 'EISDIR':
    case 'ENXIO':
    case 'ETXTBSY':
      return new LockFileError(
        'ERR_LOCK_FILE_UNSAFE',
        path,
        `The lock file ${path} is not a regular file (${c}); refusing to use it. Remove it, or choose another directory with ${DIR_OPTION}.`,
        error
      );
    case 'EACCES':
    case 'EPERM':
    case 'EROFS': {
      const owner = ownerOf(path);
      const problem =
        owner === undefined
          ? `this user (uid ${uid()}) may not create files in ${dirname(path)}. Make it writable for every user of the lock ` +
            `(a shared directory should be mode 1777, like /tmp), or choose one with ${DIR_OPTION} or EXCLUSIVE_PROCESS_DIR`
          : `it belongs to uid ${owner} and this user (uid ${uid()}) may not read it. ` +
            `Run as uid ${owner} or root, or have them remove it or make it readable (chmod a+r)`;
      return new LockFileError('ERR_LOCK_PERMISSION', path, `No permission for the lock file ${path} (${c}): ${problem}.`, error);
    }
    case 'ENOTDIR':
      return notADirectory(dirname(path));
    case 'ENOENT':
      return isDirectory(dirname(path))
        ? // /proc and /sys: the directory is there, but no file can be created in it.
          new LockFileError(
            'ERR_LOCK_DIR',
            dirname(path),
            `The lock directory ${dirname(path)} does not accept new files (creating ${basename(path)} there fails with ENOENT): ` +
              `it is on a virtual file system such as /proc or /sys. Choose a directory on an ordinary file system (such as /run/lock or /tmp) with ${DIR_OPTION} or EXCLUSIVE_PROCESS_DIR.`,
            error
          )
        : new LockFileError(
            'ERR_LOCK_DIR',
            path,
            `The directory of the lock file ${path} does not exist (${c}). Set ${DIR_OPTION} or EXCLUSIVE_PROCESS_DIR to a directory.`,
            error
          );
    default:
      return new LockFileError('ERR_LOCK_IO', path, `Cannot use the lock file ${path} (${c}).`, error);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** This process's uid, for messages ('?' where there is none: Windows). */
export function uid(): number | string {
  return process.getuid?.() ?? '?';
}

/** The uid owning `path` (not following a symlink), or undefined when it does not exist. */
export function ownerOf(path: string): number | undefined {
  try {
    return lstatSync(path).uid;
  } catch {
    return undefined;
  }
}

/** The `code` of a Node system error (`'ENOENT'`...), if any. */
export function code(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}
