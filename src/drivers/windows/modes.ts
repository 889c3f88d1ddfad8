import { closeSync, lstatSync } from 'node:fs';
import { limitOf, modeOf } from '../../shared/holder-record.js';
import { openExistingLockFile, openLockFile, readHead, writeRecord } from '../file/lock-file.js';
import { ERROR_FILE_NOT_FOUND, WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT, type Kernel32 } from '../../native/kernel32.js';
import type { HolderRecord } from '../types.js';

/**
 * Shared and counted locks on named mutexes (docs/internals/modes.md),
 * the parts both the driver's thread and its waiter threads run. Beside a
 * name's mutex R (held by an exclusive holder; taken for a moment by every
 * shared or counted holder on its way in, so entries are serialised and an
 * exclusive holder keeps everyone out):
 * - `R#r-<k>` (k < MAX_READERS): a shared holder's slot, owned while it holds;
 * - `R#c-<k>` (k < limit): a counted holder's slot;
 * - `R#family`: a mutex nobody owns, only kept open by every shared or
 *   counted holder for its hold: it exists exactly while one does (Windows
 *   closes a dead process's handles). Its info file says which use they
 *   agreed on (`shared`, `limit 3`), written by whoever created it while
 *   holding R.
 * All are owned objects: a dead holder's slot is abandoned, hence free.
 */

/** Shared holders at once (processes or threads; a thread's shared calls share one): more wait for a slot. WaitForMultipleObjects takes at most 64. */
export const MAX_READERS = 64;

/** The use a shared or counted request makes of a name: `shared` or `limit N` (undefined: exclusive). */
export type Family = string;

/** `R#part`, before the directory hash so that the side object's info file goes to the same directory. */
export function sideName(resource: string, part: string): string {
  const at = resource.lastIndexOf('@'); // an encoded lock name never holds '@' or '#'
  return at < 0 ? `${resource}#${part}` : `${resource.slice(0, at)}#${part}${resource.slice(at)}`;
}

export const markerName = (resource: string): string => sideName(resource, 'family');

/** The slot mutexes of a family: reader slots for `shared`, the `limit` counted slots otherwise. */
export function slotNames(resource: string, family: Family): string[] {
  const limit = limitOfFamily(family);
  return limit === undefined
    ? Array.from({ length: MAX_READERS }, (_, k) => sideName(resource, `r-${k}`))
    : Array.from({ length: limit }, (_, k) => sideName(resource, `c-${k}`));
}

/** What a request asks for: its family, or undefined for a plain exclusive one. */
export function familyOf(record: HolderRecord): Family | undefined {
  if (limitOf(record) > 1) return `limit ${limitOf(record)}`;
  return modeOf(record) === 'shared' ? 'shared' : undefined;
}

function limitOfFamily(family: Family): number | undefined {
  const limit = /^limit (\d+)$/.exec(family)?.[1];
  return limit === undefined ? undefined : Number(limit);
}

/** The use a family describes, for ERR_LOCK_MISMATCH messages. */
export function useOf(family: Family): Pick<HolderRecord, 'mode' | 'limit'> {
  const limit = limitOfFamily(family);
  return limit === undefined ? { mode: 'shared' } : { limit };
}

/**
 * The family the name's shared or counted holders use, undefined when it
 * has none (no `R#family`); '' when that is held but its file says nothing.
 */
export function currentFamily(k: Kernel32, resource: string, familyFile: string): Family | undefined {
  const opened = k.openMutex(markerName(resource));
  if (opened.handle === 0) return undefined;
  k.closeHandle(opened.handle);
  return readFamily(familyFile) ?? '';
}

/** What joining a family gave: the open `R#family` handle to keep for the hold, a disagreeing family, or a Windows error. */
export type Joined = { marker: number } | { held: Family } | { error: number };

/**
 * Joins the name's family, holding R: opens `R#family` and checks its file
 * says `wanted`, or creates it and says so. Only a creator writes the file,
 * and every joiner holds R, so nobody reads it half written.
 */
export function joinFamily(k: Kernel32, resource: string, familyFile: string, wanted: Family): Joined {
  const name = markerName(resource);
  const opened = k.openMutex(name);
  if (opened.handle !== 0) {
    const said = readFamily(familyFile);
    if (said === wanted) return { marker: opened.handle };
    if (said !== undefined) {
      k.closeHandle(opened.handle);
      return { held: said };
    }
    writeFamily(familyFile, wanted); // the file was lost: say it again
    return { marker: opened.handle };
  }
  if (opened.error !== ERROR_FILE_NOT_FOUND) return { error: opened.error };
  const created = k.createMutex(name);
  if (created.handle === 0) return { error: created.error };
  writeFamily(familyFile, wanted);
  return { marker: created.handle };
}

function readFamily(path: string): Family | undefined {
  try {
    const file = openExistingLockFile(path);
    if (file === undefined) return undefined;
    try {
      const line = readHead(file.fd).toString('utf8').split('\n', 1)[0];
      return line === '' ? undefined : line;
    } finally {
      closeSync(file.fd);
    }
  } catch {
    return undefined; // unsafe or unreadable
  }
}

function writeFamily(path: string, family: Family): void {
  let file: ReturnType<typeof openLockFile> | undefined;
  try {
    file = openLockFile(path);
    // Windows has no O_NOFOLLOW: write only if the path is the file we opened, not a link to elsewhere.
    const stat = lstatSync(path);
    if (!stat.isSymbolicLink() && stat.ino === file.ino) writeRecord(file.fd, Buffer.from(`${family}\n`));
  } catch {
    // Unwritable: the next joiner finds no family and says its own (mismatches go unnoticed, slots still bound the holders).
  } finally {
    if (file !== undefined) closeSync(file.fd);
  }
}

/** Handles of the reader slots some process has open (only those can be owned), for a writer to wait on. */
export function openReaderSlots(k: Kernel32, resource: string): number[] {
  const handles: number[] = [];
  for (const name of slotNames(resource, 'shared')) {
    const opened = k.openMutex(name);
    if (opened.handle !== 0) handles.push(opened.handle);
  }
  return handles;
}

/** Handles packed as 64-bit values for WaitForMultipleObjects. */
export function packHandles(handles: readonly number[]): Buffer {
  const packed = Buffer.alloc(handles.length * 8);
  handles.forEach((handle, i) => packed.writeBigInt64LE(BigInt(handle), i * 8));
  return packed;
}

/**
 * A writer holding R waits up to `ms` until no reader holds a slot (no new
 * one can enter while it holds R): true when none does any more. The slots
 * are taken together and given back at once; the handles are closed.
 */
export function readersGone(k: Kernel32, slots: readonly number[], ms: number): boolean | 'failed' {
  if (slots.length === 0) return true;
  const result = k.waitAll(packHandles(slots), ms);
  const all =
    (result >= WAIT_OBJECT_0 && result < WAIT_OBJECT_0 + slots.length) ||
    (result >= WAIT_ABANDONED && result < WAIT_ABANDONED + slots.length);
  if (all) for (const slot of slots) k.releaseMutex(slot);
  return all ? true : result === WAIT_TIMEOUT ? false : 'failed';
}

export function closeAll(k: Kernel32, handles: readonly number[]): void {
  for (const handle of handles) k.closeHandle(handle);
}
