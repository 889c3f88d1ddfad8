import { createHash } from 'node:crypto';
import { closeSync, lstatSync, unlinkSync } from 'node:fs';
import { encodeRecord } from '../../shared/holder-record.js';
import { openLockFile, readRecordAt, writeRecord } from '../file/lock-file.js';
import { ERROR_FILE_NOT_FOUND, type Kernel32 } from '../../native/kernel32.js';
import type { HolderRecord } from '../types.js';

/**
 * Info files: the holder record of a mutex, in a small file beside where the
 * lock file would be, written after acquiring. They serve `holder()` and
 * messages only: the mutex alone decides who holds the lock.
 */

/** Suffix of the info files holding the holder record. */
const INFO_FILE_SUFFIX = '.mutex';

/**
 * The info file of the lock whose mutex is `resource`, derived from the
 * mutex name so that two mutexes never share one: its lock part, `@global`
 * for the global namespace, and, when the name has capital letters, `~` and
 * a hash of its exact spelling, since mutex names are case-sensitive and
 * Windows file names are not (`Nightly` and `nightly` are two mutexes).
 * The directory part is where the file lives instead.
 *
 * @example
 * ```ts
 * infoFileName('Local\\exclusive-process.nightly@1f0c2a3b4c5d6e7f'); // 'exclusive-process.nightly.mutex'
 * infoFileName('Global\\exclusive-process.Nightly'); // 'exclusive-process.Nightly@global~<16 hex digits>.mutex'
 * ```
 */
export function infoFileName(resource: string): string {
  const at = resource.lastIndexOf('@'); // an encoded lock name never holds '@'
  const base = resource.slice(resource.indexOf('\\') + 1, at < 0 ? undefined : at);
  const global = resource.startsWith('Global\\') ? '@global' : '';
  // %XX escapes are always upper case: only the name's own capitals can meet their lower-case twins.
  const folded = /[A-Z]/.test(base.replace(/%[0-9A-F]{2}/g, '')) ? `~${createHash('sha256').update(base).digest('hex').slice(0, 16)}` : '';
  return `${base}${global}${folded}${INFO_FILE_SUFFIX}`;
}

export function writeInfo(info: string, record: HolderRecord): void {
  let file: ReturnType<typeof openLockFile> | undefined;
  try {
    file = openLockFile(info);
    // Windows has no O_NOFOLLOW: write only if the path is the file we opened, not a link to elsewhere.
    const stat = lstatSync(info);
    if (!stat.isSymbolicLink() && stat.ino === file.ino) writeRecord(file.fd, encodeRecord(record));
  } catch {
    // The record is informational: the lock is held whatever happens to it (holder() then reports pid null).
  } finally {
    if (file !== undefined) closeSync(file.fd);
  }
}

export function readInfo(info: string): HolderRecord | null {
  try {
    return readRecordAt(info);
  } catch {
    return null; // unsafe or unreadable: no holder details
  }
}

export function removeInfo(info: string): void {
  try {
    unlinkSync(info);
  } catch {
    // Already gone, or in use by a reader: a stale record is harmless (holder() checks the mutex first).
  }
}

/**
 * Removes the info file of a mutex nobody holds. Asks the kernel
 * (NtQueryMutant) rather than taking the mutex, so a concurrent tryLock
 * never fails because of us; at worst a record written in between is lost.
 */
export function removeInfoIfFree(k: Kernel32, resource: string, info: string): void {
  const opened = k.openMutex(resource);
  let free = opened.error === ERROR_FILE_NOT_FOUND;
  if (opened.handle !== 0) {
    const state = k.mutexState(opened.handle);
    free = state !== undefined && state.count > 0;
    k.closeHandle(opened.handle);
  }
  if (free) removeInfo(info);
}
