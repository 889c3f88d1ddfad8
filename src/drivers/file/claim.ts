import {
  closeSync,
  constants,
  fstatSync,
  linkSync,
  lstatSync,
  openSync,
  readFileSync,
  readlinkSync,
  unlinkSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { dirname } from 'node:path';
import { decodeRecord, encodeRecord } from '../../shared/holder-record.js';
import { LOCK_FILE_SUFFIX, lockFileName, lockNamesIn } from './path.js';
import { randomHex, sha256 } from '../../shared/crypto.js';
import { LockFileError } from '../../shared/errors.js';
import { currentProcess, isRunning, visibilityKey } from '../../shared/process-identity.js';
import { code, createExclusive, lockFileError, ownerOf, readHead, readRecordAt, uid } from './lock-file.js';
import type { HolderRecord } from '../types.js';

/**
 * Claim files, the portable driver's building block (the posix driver reads
 * them too, so both exclude each other on one name): a claim says "this
 * process owns this name", appears complete (temp file + link(2)), and is
 * never modified, only unlinked. See docs/internals/portable-reclaim.md.
 */

const { O_RDONLY, O_WRONLY } = constants;
// Not defined on Windows; there symlinks need privileges and we lstat first.
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
// Opening a planted FIFO must not hang; changes nothing for regular files.
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;
const TOKEN = /^[0-9a-f]{24}$/;

/** A claim file as read. */
export interface Claim {
  /**
   * What identifies this very claim: its token, or for a file we did not
   * write (garbage, another tool's), a hash of its inode, change time and
   * content. Never the inode alone: inodes are reused as soon as a file is deleted.
   */
  readonly id: string;
  /** The token, when the file is one of ours. */
  readonly token: string | undefined;
  /** The holder record, or null when unreadable (garbage, `0`, a huge number...). */
  readonly record: HolderRecord | null;
  /** Boot id of the creator's machine (Linux), when recorded. */
  readonly boot: string | undefined;
  /** Pid namespace of the creator (Linux), when recorded. */
  readonly pidns: string | undefined;
  /** Time namespace of the creator (Linux), when recorded: start times are comparable only within one. */
  readonly timens: string | undefined;
  /** The creator's visibilityKey() (Linux), when it has one: who is sure to see it in /proc. */
  readonly ids: string | undefined;
}

/**
 * A fresh random token: 96 bits, so two claims never share one.
 *
 * @example
 * ```ts
 * newToken(); // '9c87e6c476a20365e7e5ed64'
 * ```
 */
export function newToken(): string {
  return randomHex(12);
}

/**
 * The temp file a claim with `token` is written to before it is linked into
 * place. Ends in `.tmp`, so it is never taken for a lock file.
 *
 * @example
 * ```ts
 * tempPath('/run/lock/exclusive-process.x.lock', token); // '/run/lock/exclusive-process.x.lock.<token>.tmp'
 * ```
 */
export function tempPath(lockPath: string, token: string): string {
  return `${lockPath}.${token}.tmp`;
}

/** What ends a claim file's name, where a posix lock file's ends in `.lock`. */
export const CLAIM_FILE_SUFFIX = '.pid';

/**
 * The portable driver's claim file for the posix driver's lock file (or
 * file name) `lockPath`: the same name ending in `.pid` instead of `.lock`.
 * Two files, so neither driver misreads the other's: a posix lock file stays
 * after release, and a claim must never be opened and flocked. Each driver
 * looks at the other's file to exclude it (see portable/index.ts and posix/index.ts).
 *
 * @example
 * ```ts
 * claimPathFor('/run/lock/exclusive-process.x.lock'); // '/run/lock/exclusive-process.x.pid'
 * ```
 */
export function claimPathFor(lockPath: string): string {
  return `${lockPath.slice(0, -LOCK_FILE_SUFFIX.length)}${CLAIM_FILE_SUFFIX}`;
}

/**
 * The posix driver's lock file for the claim file `claimPath` (the reverse of {@link claimPathFor}).
 *
 * @example
 * ```ts
 * lockPathFor('/run/lock/exclusive-process.x.pid'); // '/run/lock/exclusive-process.x.lock'
 * ```
 */
export function lockPathFor(claimPath: string): string {
  return `${claimPath.slice(0, -CLAIM_FILE_SUFFIX.length)}${LOCK_FILE_SUFFIX}`;
}

/**
 * The in-process registry key (see `LockDriver.registryKey`) of a name whose
 * posix lock file is `lockPath`: the posix and portable drivers exclude each
 * other on a name, so a thread's acquisitions through either are one entry.
 *
 * @example
 * ```ts
 * fileRegistryKey('/run/lock/exclusive-process.x.lock'); // 'file\n/run/lock/exclusive-process.x.lock'
 * ```
 */
export function fileRegistryKey(lockPath: string): string {
  return `file\n${lockPath}`;
}

/**
 * The holder recorded in the claim at `path` when it is live, else null
 * (none, stale, or something that is not a claim: whoever asks cannot use
 * it either). Cheap when there is none, as for a posix acquisition.
 *
 * @example
 * ```ts
 * liveClaimAt(claimPathFor(lockPath)); // null: no portable-driver process holds it
 * ```
 */
export function liveClaimAt(path: string): HolderRecord | null {
  if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return null;
  try {
    const claim = readClaim(path);
    return claim !== undefined && isLive(claim) ? claim.record : null;
  } catch (error) {
    // A claim we may not read (another user's 0600 file) may be live: never say free.
    if (error instanceof LockFileError && error.code === 'ERR_LOCK_PERMISSION') throw error;
    return null;
  }
}

/** What ends the name of the marker that portable shared or counted claims may exist (see slot-claims.ts). */
export const SLOTS_MARKER_SUFFIX = '.slots';

/**
 * The names of the locks with a file in `dir`, for `status`: a posix lock
 * file (`.lock`), a portable claim (`.pid`) or the marker of portable slot
 * claims (`.slots`; long hashed names only through the other two), since
 * each driver's holder() sees the other's holders too. A name may appear
 * more than once.
 *
 * @example
 * ```ts
 * fileLockNamesIn('/run/lock'); // ['nightly', 'nightly', 'backup']
 * ```
 */
export function fileLockNamesIn(dir: string | undefined): string[] {
  return [
    ...lockNamesIn(dir, (path) => readRecordAt(path)?.name),
    ...lockNamesIn(
      dir,
      (path) => readClaim(path)?.record?.name,
      (name) => claimPathFor(lockFileName(name))
    ),
    ...lockNamesIn(
      dir,
      () => undefined, // empty: plain names only, read back from the file name
      (name) => `${lockFileName(name).slice(0, -LOCK_FILE_SUFFIX.length)}${SLOTS_MARKER_SUFFIX}`
    ),
  ];
}

/**
 * Creates the claim file `target` holding `record` and `token`: true when we
 * created it, false when the name exists. `lockPath` names the temp file
 * (in the same directory, as link() needs). Throws a LockFileError when the
 * file cannot be created completely (no space, no permission, no hard links).
 *
 * @example
 * ```ts
 * const token = newToken();
 * if (createClaim(path, path, recordForThisProcess('x'), token)) console.log('ours');
 * ```
 */
export function createClaim(lockPath: string, target: string, record: HolderRecord, token: string): boolean {
  const self = identity();
  const bytes = Buffer.concat([
    encodeRecord(record),
    Buffer.from(
      `${JSON.stringify({ token, boot: self.boot, pidns: self.pidns, timens: self.timens, ids: visibilityKey() ?? undefined })}\n`
    ),
  ]);
  const temp = tempPath(lockPath, token);
  let fd: number;
  try {
    fd = createExclusive(temp, O_WRONLY);
  } catch (error) {
    throw lockFileError(error, target);
  }
  try {
    try {
      for (let written = 0; written < bytes.length;) written += writeSync(fd, bytes, written, bytes.length - written);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temp, target);
      return true;
    } catch (error) {
      // ENOENT: our temp file was swept as a crash leftover (see sweepLeftovers) before we linked it; try again.
      if (code(error) === 'ENOENT') return false;
      if (code(error) !== 'EEXIST') throw error;
      // NFS: a retransmitted LINK can report EEXIST although the first one
      // worked; then our temp file has gained the second link (open(2) man page).
      // ENOENT: swept meanwhile (as above); the name exists, so not ours.
      return linkCount(temp) === 2;
    }
  } catch (error) {
    // A claim that cannot be completely written must not appear: a
    // truncated record would read as garbage, that is, as free.
    if (error instanceof LockFileError) throw error;
    if (code(error) === 'EPERM' || code(error) === 'ENOTSUP' || code(error) === 'ENOSYS' || code(error) === 'EOPNOTSUPP') {
      throw new LockFileError(
        'ERR_LOCK_IO',
        target,
        `Cannot create the lock file ${target}: the file system refuses hard links (${code(error)}), which the portable driver needs. ` +
          'Choose a directory on a local file system with the `dir` option or EXCLUSIVE_PROCESS_DIR.',
        error
      );
    }
    throw lockFileError(error, target);
  } finally {
    unlinkQuietly(temp);
  }
}

/** The number of links of `path`, 0 when it is gone. */
function linkCount(path: string): number {
  try {
    return lstatSync(path).nlink;
  } catch (error) {
    if (code(error) === 'ENOENT') return 0;
    throw error;
  }
}

/**
 * Reads the claim file at `path`: undefined when there is none. Never
 * follows a symlink; refuses anything but a regular file (ERR_LOCK_FILE_UNSAFE).
 *
 * Unlike openLockFile (file/lock-file.ts) a second hard link is accepted: our own
 * claims have two links for the instant between link() and the unlink of
 * the temp file (or for good, when the creator died in that instant). The
 * one-link rule guards against *writing* through a planted link; this
 * driver only reads and unlinks existing files, and unlink removes just the
 * name in the lock directory.
 *
 * @example
 * ```ts
 * const claim = readClaim(path); // undefined, or { id, token, record, boot, pidns }
 * ```
 */
export function readClaim(path: string): Claim | undefined {
  let fd: number;
  try {
    if (O_NOFOLLOW === 0 && lstatSync(path).isSymbolicLink()) throw Object.assign(new Error('symbolic link'), { code: 'ELOOP' });
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    if (code(error) === 'ENOENT') return undefined;
    throw lockFileError(error, path);
  }
  let bytes: Buffer;
  let stat: BigIntStats;
  try {
    stat = fstatSync(fd, { bigint: true });
    if (!stat.isFile()) {
      throw new LockFileError(
        'ERR_LOCK_FILE_UNSAFE',
        path,
        `The lock file ${path} is not a regular file; refusing to use it. Remove it, or use a directory only you can write (the \`dir\` option).`
      );
    }
    bytes = readHead(fd);
  } finally {
    closeSync(fd);
  }
  const record = decodeRecord(bytes);
  const meta = parseMeta(bytes);
  const token = record !== null ? meta?.token : undefined;
  const id = token ?? `x${sha256().update(`${stat.dev}:${stat.ino}:${stat.ctimeNs}:`).update(bytes).digest('hex').slice(0, 23)}`;
  return { id, token, record, boot: meta?.boot, pidns: meta?.pidns, timens: meta?.timens, ids: meta?.ids };
}

/**
 * True when the claim's creator may still be running, so the claim must be
 * respected. Garbage is not: our claims are complete when they appear, so
 * an unreadable file was never a live claim of ours.
 *
 * - Another host: we cannot look at its processes, so the claim is held
 *   until removed by hand (the record names the host).
 * - Same host, another boot: dead (the file outlived a reboot).
 * - Another pid namespace (containers sharing a lock directory), or ours
 *   unknown (no procfs here): its pids cannot be judged here, so held.
 * - Else the recorded pid must run (not a zombie) with the recorded start
 *   time (Linux), so a reused pid is not believed. Start times are shifted
 *   by each time namespace: from another one, or where the OS gives none,
 *   a live pid counts. So does a pid hidden from us (/proc mounted
 *   `hidepid=2`), unless the creator had our ids (visibilityKey()): then it
 *   would be visible if it ran, so the pid is someone else's now.
 * - Files without our namespace line (another tool's, the posix driver's
 *   leftovers) are judged as if from this namespace.
 *
 * @example
 * ```ts
 * const claim = readClaim(path);
 * const held = claim !== undefined && isLive(claim);
 * ```
 */
export function isLive(claim: Claim): boolean {
  const { record } = claim;
  if (record === null || record.pid === null) return false;
  const self = identity();
  if (record.host !== undefined && record.host !== self.host) return true;
  if (claim.boot !== undefined && self.boot !== undefined && claim.boot !== self.boot) return false;
  if (claim.pidns !== undefined && claim.pidns !== self.pidns) return true;
  const comparable = claim.timens === undefined || claim.timens === self.timens;
  // With our own ids, a live holder would be visible to us in /proc: a pid hidden from us (hidepid) is someone else's now.
  const visible = claim.ids !== undefined && claim.ids === visibilityKey();
  return isRunning(record.pid, comparable ? record.start : undefined, visible);
}

/**
 * Removes a name in the lock directory; true when it was there. Other
 * errors (another user's file in a sticky directory...) are LockFileErrors.
 *
 * @example
 * ```ts
 * unlinkClaim(path); // false: already gone
 * ```
 */
export function unlinkClaim(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (error) {
    if (code(error) === 'ENOENT') return false;
    throw lockFileError(error, path);
  }
}

/**
 * Removes the claim at `path` whose creator is dead (`claim`, as read); true
 * when it was there. In a sticky directory (/tmp, Debian's /run/lock) only
 * the file's owner or root may remove it, so another user's dead claim blocks
 * the lock until they do: that gets an ERR_LOCK_PERMISSION naming the owner,
 * the dead holder and the fix (the lock is not taken: never two holders).
 *
 * @example
 * ```ts
 * if (!isLive(seen)) unlinkStaleClaim(path, seen);
 * ```
 */
export function unlinkStaleClaim(path: string, claim: Claim): boolean {
  try {
    return unlinkClaim(path);
  } catch (error) {
    const owner = ownerOf(path);
    const cause = (error as LockFileError).cause;
    if (code(cause) !== 'EPERM' && code(cause) !== 'EACCES') throw error;
    if (owner === undefined || owner === process.getuid?.()) throw error; // our own file: the directory is not writable
    const holder = claim.record?.pid == null ? 'a holder that is no longer running' : `pid ${claim.record.pid}, which is no longer running`;
    throw new LockFileError(
      'ERR_LOCK_PERMISSION',
      path,
      `The lock ${claim.record?.name === undefined ? '' : `'${claim.record.name}' `}is free, but its file ${path} was left by ${holder}, and belongs to uid ${owner}: ` +
        `this user (uid ${uid()}) may not remove it from ${dirname(path)} (${code(cause)}), so cannot take the lock. ` +
        `Remove the file as uid ${owner} or root, or use the posix driver, which can lock another user's file.`,
      cause
    );
  }
}

/**
 * Removes a file we created (a temp file, a dead creator's temp file),
 * ignoring every error.
 *
 * @example
 * ```ts
 * unlinkQuietly(tempPath(path, token));
 * ```
 */
export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or not ours to remove: leftovers only cost a name in the directory.
  }
}

function parseMeta(bytes: Buffer): { token: string; boot?: string; pidns?: string; timens?: string; ids?: string } | undefined {
  const text = bytes.toString('utf8');
  const first = text.indexOf('\n');
  const second = text.indexOf('\n', first + 1);
  if (first < 0 || second < 0) return undefined;
  try {
    const meta = JSON.parse(text.slice(first + 1, second)) as Record<string, unknown>;
    if (typeof meta !== 'object' || meta === null || typeof meta.token !== 'string' || !TOKEN.test(meta.token)) return undefined;
    return {
      token: meta.token,
      boot: typeof meta.boot === 'string' ? meta.boot : undefined,
      pidns: typeof meta.pidns === 'string' ? meta.pidns : undefined,
      timens: typeof meta.timens === 'string' ? meta.timens : undefined,
      ids: typeof meta.ids === 'string' ? meta.ids : undefined,
    };
  } catch {
    return undefined;
  }
}

interface Identity {
  host: string;
  boot: string | undefined;
  pidns: string | undefined;
  timens: string | undefined;
}

let self: Identity | undefined;

/** This machine's boot id and this process's pid and time namespaces (Linux; undefined elsewhere, or without procfs), read once. */
function identity(): Identity {
  if (self === undefined) {
    const linux = process.platform === 'linux';
    self = {
      host: currentProcess().host,
      boot: linux ? procfs(() => readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim() || undefined) : undefined,
      pidns: linux ? procfs(() => readlinkSync('/proc/self/ns/pid')) : undefined,
      // Absent before Linux 5.6, which has no time namespaces.
      timens: linux ? procfs(() => readlinkSync('/proc/self/ns/time')) : undefined,
    };
  }
  return self;
}

/** What `read` returns, or undefined without procfs (some sandboxes). */
function procfs(read: () => string | undefined): string | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
