import { mkdirSync, readdirSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { debuglog } from 'node:util';
import { InvalidArgumentError, LockFileError } from '../../shared/errors.js';
import { sha256 } from '../../shared/crypto.js';
import { describe } from '../../shared/describe.js';

/**
 * Where lock files live and what they are called. The one place that turns
 * a lock name into a path: every name maps to a single file name inside the
 * lock directory, whatever it contains.
 */

/** Prefix of every lock file, so `status` can list ours among other programs' files. */
export const LOCK_FILE_PREFIX = 'exclusive-process.';
export const LOCK_FILE_SUFFIX = '.lock';
/** Longest encoded part kept readable; longer names are cut and made unique with a hash (file names stop at 255 bytes). */
const MAX_READABLE = 160;
/** `NODE_DEBUG=exclusive-process` output. */
const debug = debuglog('exclusive-process');

/**
 * The longest lock name, in UTF-16 code units: the whole name is kept in the
 * holder record, which must stay small enough to read at once.
 */
export const MAX_NAME_LENGTH = 100_000;

/**
 * Checks a lock name: any non-empty string of well-formed Unicode, up to
 * MAX_NAME_LENGTH. Lone surrogates are refused because they cannot be
 * encoded, so two different names would share one lock.
 */
export function validateName(name: unknown, what = 'options.name'): string {
  if (typeof name !== 'string') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `${what} must be a string, got ${describe(name)}`);
  }
  if (name.length === 0) throw new InvalidArgumentError('ERR_INVALID_LOCK_NAME', `${what} must not be empty`);
  if (name.length > MAX_NAME_LENGTH) {
    throw new InvalidArgumentError('ERR_INVALID_LOCK_NAME', `${what} is ${name.length} characters long; the limit is ${MAX_NAME_LENGTH}`);
  }
  if (!name.isWellFormed()) {
    throw new InvalidArgumentError('ERR_INVALID_LOCK_NAME', `${what} contains a lone surrogate (ill-formed Unicode)`);
  }
  return name;
}

/**
 * The file name for a lock: bytes outside `[A-Za-z0-9._-]` are %XX-encoded
 * (so `/`, `..` and NUL cannot leave the directory), and names whose encoding
 * is long are cut and suffixed with a hash of the whole name.
 */
export function lockFileName(name: string): string {
  let encoded = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    encoded += isPlain(byte) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (encoded.length > MAX_READABLE) {
    let cut = encoded.slice(0, MAX_READABLE - 40);
    const percent = cut.lastIndexOf('%');
    if (percent > cut.length - 3) cut = cut.slice(0, percent); // never split a %XX
    encoded = `${cut}~${sha256().update(name).digest('hex').slice(0, 32)}`;
  }
  return `${LOCK_FILE_PREFIX}${encoded}${LOCK_FILE_SUFFIX}`;
}

function isPlain(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) ||
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    byte === 0x2e ||
    byte === 0x5f ||
    byte === 0x2d
  );
}

/**
 * How messages name the `dir` option. The `exclusive` command puts its
 * `--dir` flag in its place (see src/cli/messages.ts), so every message that
 * names the option must spell it exactly so.
 */
export const DIR_OPTION = 'the `dir` option';

let systemDir: string | undefined;

/**
 * The lock directory: `dir` if given, else `$EXCLUSIVE_PROCESS_DIR`, else the
 * host's shared default ({@link defaultLockDirectory}). Only computed: the
 * drivers create a missing directory when they first create a file in it
 * ({@link inLockDirectory}), so asking who holds a lock never creates one.
 */
export function lockDirectory(dir: string | undefined): string {
  const chosen = chosenDirectory(dir);
  const directory = chosen ?? systemLockDirectory();
  if (debug.enabled)
    traceDirectory(directory, dir !== undefined ? 'the `dir` option' : chosen !== undefined ? 'EXCLUSIVE_PROCESS_DIR' : defaultWhy());
  return directory;
}

/** Directories already logged, with why: each is said once (NODE_DEBUG=exclusive-process). */
const loggedDirectories = new Set<string>();

function traceDirectory(directory: string, why: string): void {
  const line = `lock directory ${directory}, from ${why}`;
  if (loggedDirectories.has(line)) return;
  loggedDirectories.add(line);
  debug('%s', line);
}

function defaultWhy(): string {
  if (process.platform === 'win32') return 'the default (the temp directory)';
  return `the default (the first shared directory of ${SHARED_LOCK_DIRECTORIES.join(', ')}, else ${SHARED_TEMP_DIRECTORY})`;
}

/** The lock directory when neither `dir` nor `$EXCLUSIVE_PROCESS_DIR` is set (canonical). */
export function systemLockDirectory(): string {
  return (systemDir ??= canonicalDirectory(defaultLockDirectory()));
}

/** The directory the user chose (`dir`, else `$EXCLUSIVE_PROCESS_DIR`), canonical; undefined for the system default. */
export function chosenDirectory(dir: string | undefined): string | undefined {
  const chosen = dir ?? (process.env.EXCLUSIVE_PROCESS_DIR || undefined);
  return chosen === undefined ? undefined : canonicalDirectory(chosen);
}

/** Canonical paths of existing directories, by absolute path: a realpath per acquisition would cost more than the lock. */
const canonical = new Map<string, string>();
const MAX_CANONICAL = 1000;

/**
 * `dir` as an absolute path with symbolic links resolved (in the part of it
 * that exists), so two spellings of one directory (`/var/lock` and
 * `/run/lock`) name the same locks: the in-process registry and the open
 * files are keyed by path, and two keys for one file would make a process
 * wait for itself.
 */
function canonicalDirectory(dir: string): string {
  const absolute = resolve(dir);
  const known = canonical.get(absolute);
  if (known !== undefined) return known;
  const missing: string[] = [];
  for (let existing = absolute; ; existing = dirname(existing)) {
    try {
      const real = join(realpathSync.native(existing), ...missing);
      if (missing.length === 0) {
        if (canonical.size >= MAX_CANONICAL) canonical.clear();
        canonical.set(absolute, real);
      }
      return real;
    } catch (error) {
      // Not there yet (created on first use): resolve the part that is. Anything else shows when a file is opened.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(existing) === existing) return absolute;
      missing.unshift(basename(existing));
    }
  }
}

/** The path of the lock file for `name`, in the directory chosen by {@link lockDirectory}. */
export function lockFilePath(name: string, dir: string | undefined): string {
  return join(lockDirectory(dir), lockFileName(name));
}

/**
 * Runs `create`, which makes a file in the lock directory `dir`; when that
 * fails because the directory is missing, creates it (with its parents) and
 * runs `create` once more. A directory that cannot be made gets a
 * LockFileError (ERR_LOCK_DIR or ERR_LOCK_PERMISSION).
 */
export function inLockDirectory<T>(dir: string, create: () => T): T {
  try {
    return create();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    createLockDirectory(dir);
    return create();
  }
}

function createLockDirectory(path: string): void {
  try {
    makeDirectory(path);
    if (statSync(path).isDirectory()) return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new LockFileError(
        'ERR_LOCK_PERMISSION',
        path,
        `Cannot create the lock directory ${path} (${code}): choose a writable directory with ${DIR_OPTION} or EXCLUSIVE_PROCESS_DIR.`,
        error
      );
    }
    if (code !== 'EEXIST' && code !== 'ENOTDIR') {
      throw new LockFileError('ERR_LOCK_DIR', path, `Cannot use the lock directory ${path} (${code ?? String(error)}).`, error);
    }
  }
  throw notADirectory(path);
}

/** The error for a lock directory path that names something else (a file...). */
export function notADirectory(path: string): LockFileError {
  return new LockFileError(
    'ERR_LOCK_DIR',
    path,
    `The lock directory ${path} is not a directory: point ${DIR_OPTION} or EXCLUSIVE_PROCESS_DIR at a directory.`
  );
}

/**
 * mkdir -p, each level tried once: Node's own recursive mkdir never returns
 * on file systems like /proc, where mkdir fails with ENOENT under an
 * existing parent.
 */
function makeDirectory(path: string): void {
  try {
    mkdirSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(path) === path) throw error;
    makeDirectory(dirname(path));
    mkdirSync(path);
  }
}

/** Where the default lock directory may be, best first (Unix): the first shared one wins. */
const SHARED_LOCK_DIRECTORIES = ['/run/lock', '/var/lock'];
/** The Unix default when no lock directory above is shared: the same for every user and environment, unlike `os.tmpdir()`. */
const SHARED_TEMP_DIRECTORY = '/tmp';
/** Sticky (0o1000), and others may create (0o2) and search (0o1): what 1777 gives. */
const SHARED_MODE = 0o1003;

/**
 * The default lock directory, decided from the host's state only, so that
 * every user and every environment (cron without `TMPDIR`, a shell with it)
 * of one host picks the same one and the same name is one lock for all:
 * the first of `/run/lock`, `/var/lock` that is a shared directory (world
 * writable and sticky, like Debian's 1777 `/run/lock`), else `/tmp` (where
 * `/run/lock` is root's 0755 directory: systemd's default on Fedora, RHEL and
 * Arch). Never `TMPDIR` or `os.tmpdir()`, which differ between users (macOS
 * gives each user a private one) and environments. A user who may not create
 * files in the chosen directory gets ERR_LOCK_PERMISSION, never a private lock.
 *
 * On Windows, the temp dir: there the lock is a named mutex whose default
 * name does not depend on the directory, which only holds the holder records.
 *
 * @example
 * ```ts
 * defaultLockDirectory(); // '/run/lock' on Debian, '/tmp' on Fedora
 * ```
 */
export function defaultLockDirectory(): string {
  if (process.platform === 'win32') return tmpdir();
  return SHARED_LOCK_DIRECTORIES.find(isSharedDirectory) ?? SHARED_TEMP_DIRECTORY;
}

/** True for a directory every user may create files in and no user may delete others' files from (mode 1777). */
function isSharedDirectory(path: string): boolean {
  try {
    const stat = statSync(path);
    return stat.isDirectory() && (stat.mode & SHARED_MODE) === SHARED_MODE;
  } catch {
    return false; // absent (macOS has neither), or not ours to look at
  }
}

/**
 * The names of the locks that have a file in `dir`, for `status`. A file
 * counts when it is a regular file named `fileName(name)` for a valid lock
 * name: read back from a plain lock file name, else from its record via
 * `readName` (hashed long names, other suffixes). Anything else that looks
 * like ours (a directory, FIFO or symlink planted in a shared directory,
 * `exclusive-process..lock`, unreadable files) is passed over, and said so
 * under `NODE_DEBUG=exclusive-process`.
 */
export function lockNamesIn(
  dir: string | undefined,
  readName: (path: string) => string | undefined,
  fileName: (name: string) => string = lockFileName
): string[] {
  const directory = lockDirectory(dir);
  const names: string[] = [];
  const tail = fileName('a').slice(`${LOCK_FILE_PREFIX}a`.length); // what follows the encoded name: '.lock', '.pid'...
  for (const entry of entriesIn(directory)) {
    const file = entry.name;
    if (!file.startsWith(LOCK_FILE_PREFIX)) continue;
    if (!entry.isFile()) {
      debug('status: skipping %s: not a regular file', join(directory, file));
      continue;
    }
    let name = decodeFileName(file, tail, fileName);
    if (name === undefined) {
      try {
        name = readName(join(directory, file));
      } catch {
        debug('status: skipping %s: unreadable', join(directory, file));
        continue; // not a file we may read: not ours to list
      }
    }
    if (name !== undefined && isValidName(name) && fileName(name) === file) names.push(name);
    else debug('status: skipping %s: not the file of a lock name', join(directory, file));
  }
  return names;
}

function isValidName(name: string): boolean {
  try {
    validateName(name);
    return true;
  } catch {
    return false;
  }
}

/** The entries of the lock directory: none when it does not exist yet. */
function entriesIn(directory: string): Dirent[] {
  try {
    return readdirSync(directory, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    if (code === 'ENOTDIR') throw notADirectory(directory);
    if (code === 'EACCES' || code === 'EPERM') {
      throw new LockFileError(
        'ERR_LOCK_PERMISSION',
        directory,
        `Cannot list the lock directory ${directory} (${code}): run as a user who may read it.`,
        error
      );
    }
    throw new LockFileError('ERR_LOCK_DIR', directory, `Cannot list the lock directory ${directory} (${code ?? String(error)}).`, error);
  }
}

/** The name behind a plain (not hashed) file name made by `fileName` (ending in `tail`), or undefined. */
function decodeFileName(file: string, tail: string, fileName: (name: string) => string): string | undefined {
  if (!file.endsWith(tail)) return undefined;
  const encoded = file.slice(LOCK_FILE_PREFIX.length, -tail.length);
  if (encoded.includes('~')) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] === '%') {
      bytes.push(Number.parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(encoded.charCodeAt(i));
    }
  }
  const name = Buffer.from(bytes).toString('utf8');
  return fileName(name) === file ? name : undefined; // only names we made
}
