import { closeSync, lstatSync, readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { decodeRecord, encodeRecord, limitOf, modeOf } from '../../shared/holder-record.js';
import { lockMismatch as mismatch, type LockModeError } from '../../shared/errors.js';
import { locateLockFile, readHead } from '../file/lock-file.js';
import { flockHolderRecord, plainHolderAt } from '../file/proc-locks.js';
import { claimPathFor } from '../file/claim.js';
import { exists, portableHolderAt, portableWriterWaits, slotsMarkerPath } from '../file/slot-claims.js';
import { LOCK_EX, LOCK_NB, LOCK_SH, sleepSync, type CachedFile, type LockFiles } from './files.js';
import type { DriverLock, HolderRecord } from '../types.js';

/**
 * Shared and counted locks on flock (docs/internals/modes.md). Beside a
 * name's `<stem>.lock`, in the same directory and named from the same stem:
 * - `<stem>.gate`: held exclusively by a waiting writer; readers pass it
 *   shared on their way in, so none enters while a writer waits;
 * - `<stem>.mode`: held shared by every shared or counted holder, and says
 *   which (`shared`, `limit 3`): who disagrees gets ERR_LOCK_MISMATCH;
 * - `<stem>.slot-<k>`: a holder's slot, flocked exclusively, with its record.
 * The kernel drops every one of these flocks when their holder dies.
 */

/** How long a blocking shared wait sleeps when it found the mode file being written (microseconds of work): rare. */
const BUSY_RETRY_MS = 2;
/** The most record slots a shared lock scans: past it, a reader holds without a record of its own. */
const MAX_READER_SLOTS = 1024;

export const gatePath = (lockPath: string): string => sidePath(lockPath, 'gate');
export const modePath = (lockPath: string): string => sidePath(lockPath, 'mode');
export const slotPath = (lockPath: string, slot: number): string => sidePath(lockPath, `slot-${slot}`);

/** `<stem>.<suffix>` for the lock file `<stem>.lock`: the same directory and name safety as the lock file. */
function sidePath(lockPath: string, suffix: string): string {
  return `${lockPath.slice(0, -'.lock'.length)}.${suffix}`;
}

/** What the mode file says for a request: `shared` or `limit N`. */
function familyOf(record: HolderRecord): string {
  return limitOf(record) > 1 ? `limit ${limitOf(record)}` : 'shared';
}

/** The use a mode file's content describes, for messages. */
function useOf(family: string): Pick<HolderRecord, 'mode' | 'limit'> {
  const limit = /^limit (\d+)$/.exec(family)?.[1];
  return limit === undefined ? { mode: 'shared' } : { limit: Number(limit) };
}

/** The posix driver's shared and counted locks, over the thread's open lock files. */
export class PosixModes {
  readonly #files: LockFiles;
  /** Lock paths whose exclusive wait is announced, with the gate it holds (null: another writer had it). */
  readonly #announced = new Map<string, { gate: CachedFile | null; count: number }>();

  constructor(files: LockFiles) {
    this.#files = files;
  }

  /** One try (or with `block`, a wait) for the lock at `path` as `record` asks: shared, counted or exclusive. */
  lock(path: string, record: HolderRecord, block: boolean): DriverLock | null {
    if (limitOf(record) > 1) return this.#counted(path, record);
    if (modeOf(record) === 'shared') return block ? this.#waitShared(path, record) : this.#shared(path, record, LOCK_NB);
    return this.#exclusive(path, record, block);
  }

  /** A writer's wait starts: it takes the gate (now, or at a later try), so new readers queue behind it. */
  announce(path: string, record: HolderRecord): () => void {
    if (modeOf(record) !== 'exclusive' || limitOf(record) > 1) return () => {};
    const found = this.#announced.get(path);
    if (found !== undefined) found.count++;
    else this.#announced.set(path, { gate: this.#takeGate(path), count: 1 });
    return () => this.#withdraw(path);
  }

  /**
   * The gate, for a writer about to wait (null: another writer has it, or
   * the name has never been used shared: no mode file nor portable slots
   * marker, so no reader to keep out, and no extra file or descriptor for
   * a plain lock's waits).
   */
  #takeGate(path: string): CachedFile | null {
    if (!exists(modePath(path)) && !exists(slotsMarkerPath(claimPathFor(path)))) return null; // used shared by neither driver
    return this.#files.take(gatePath(path), LOCK_EX | LOCK_NB);
  }

  /** True when a writer waits for `path`, its gate held (for a thread's shared calls deciding whether to join its hold). */
  writerWaits(path: string): boolean {
    return !this.#files.probe(gatePath(path), LOCK_SH) || portableWriterWaits(claimPathFor(path));
  }

  #withdraw(path: string): void {
    const found = this.#announced.get(path)!;
    if (--found.count > 0) return;
    this.#announced.delete(path);
    if (found.gate === null) return;
    this.#files.unlock(gatePath(path), found.gate, false);
    this.#files.touch(path); // readers kept out by the gate try again
  }

  /** Every holder of a shared or counted lock at `path`: the slot files' holders, with their slots (counted) and records. */
  slotHolders(path: string): HolderRecord[] {
    // Every shared or counted holder holds the mode file, which is never unlinked under it: none, no slot holder (and no readdir).
    if (lstatSync(modePath(path), { throwIfNoEntry: false }) === undefined) return [];
    const stem = basename(path).slice(0, -'.lock'.length);
    const holders: HolderRecord[] = [];
    for (const slot of slotNumbers(dirname(path), `${stem}.slot-`)) {
      const holder = this.#slotHolder(slotPath(path, slot));
      if (holder === null) continue;
      holders.push(limitOf(holder) > 1 ? { ...holder, slot } : holder);
    }
    return holders;
  }

  /** The holder of one slot file (Linux: /proc/locks, no flock of ours; elsewhere a probe and the record), or null when free. */
  #slotHolder(path: string): HolderRecord | null {
    const file = locateLockFile(path);
    if (file === undefined) return null;
    try {
      const holder = flockHolderRecord(file);
      if (holder !== undefined) return holder;
      if (this.#files.probe(path, LOCK_SH)) return null;
      return decodeRecord(readHead(file.fd)) ?? { name: '', pid: null };
    } finally {
      closeQuietly(file.fd);
    }
  }

  /**
   * Exclusive: the lock file alone, as always (a free lock costs one flock).
   * When held, an announced wait takes the gate if it has not yet, and a
   * counted user of the name is told apart from a holder.
   */
  #exclusive(path: string, record: HolderRecord, block: boolean): DriverLock | null {
    if (this.#files.heldHere(path) === 'shared') throw this.#mismatchHere(path, record);
    const lock = this.#files.lock(path, record, LOCK_EX | LOCK_NB);
    if (lock !== null) return lock;
    this.#checkNotCounted(path, record);
    const announced = this.#announced.get(path);
    if (announced !== undefined && announced.gate === null) announced.gate = this.#takeGate(path);
    if (!block) return null;
    // A blocking wait: hold the gate while blocked, so readers queue behind us.
    const gate = announced?.gate ? null : this.#files.take(gatePath(path), LOCK_EX);
    try {
      return this.#files.lock(path, record, LOCK_EX);
    } finally {
      if (gate !== null) this.#files.unlock(gatePath(path), gate, false);
    }
  }

  /**
   * Throws ERR_LOCK_MISMATCH when the name is held counted: its mode file
   * says `limit N` and is held. Read first, so that a plain lock never
   * creates a mode file; probed only when it says so.
   */
  #checkNotCounted(path: string, record: HolderRecord): void {
    const family = this.#readFamily(modePath(path));
    if (!family?.startsWith('limit ') || this.#files.probe(modePath(path), LOCK_EX)) return;
    throw mismatch(record.name, useOf(family), record);
  }

  #mismatchHere(path: string, record: HolderRecord): LockModeError {
    const family = this.#readFamily(modePath(path));
    return mismatch(record.name, family === undefined ? { mode: 'shared' } : useOf(family), record);
  }

  #readFamily(path: string): string | undefined {
    const file = locateLockFile(path);
    if (file === undefined || !file.readable) return undefined;
    try {
      const text = readHead(file.fd).toString('utf8');
      const end = text.indexOf('\n');
      return end < 0 ? undefined : text.slice(0, end);
    } finally {
      closeQuietly(file.fd);
    }
  }

  /** Shared: past the gate (unless a writer of either driver waits), the lock file shared, the mode file, then a record slot. */
  #shared(path: string, record: HolderRecord, nb: number): DriverLock | null {
    if (this.#files.heldHere(path) === 'exclusive') throw this.#mismatchHere(path, record);
    if (portableWriterWaits(claimPathFor(path))) return null; // a portable-driver writer's gate claim
    const gate = this.#files.take(gatePath(path), LOCK_SH | nb);
    if (gate === null) return null;
    let main: CachedFile | null;
    try {
      main = this.#files.take(path, LOCK_SH | nb);
    } finally {
      this.#files.unlock(gatePath(path), gate, false);
    }
    if (main === null) return null;
    return this.#enter(path, record, main, () => this.#recordSlot(path, MAX_READER_SLOTS));
  }

  /** A blocking shared wait: in the kernel, behind any waiting writer; again when the mode file was being written. */
  #waitShared(path: string, record: HolderRecord): DriverLock {
    for (;;) {
      const lock = this.#shared(path, record, 0);
      if (lock !== null) return lock;
      sleepSync(BUSY_RETRY_MS);
    }
  }

  /** Counted: the mode file (same limit), the lock file shared (keeps plain holders out), then a free slot. */
  #counted(path: string, record: HolderRecord): DriverLock | null {
    if (this.#files.heldHere(path) === 'exclusive') throw this.#mismatchHere(path, record);
    const main = this.#files.take(path, LOCK_SH | LOCK_NB);
    if (main === null) {
      if (plainHolderAt(path)) throw mismatch(record.name, {}, record);
      return null;
    }
    return this.#enter(path, record, main, () => this.#recordSlot(path, limitOf(record)));
  }

  /**
   * With the lock file held shared (`main`): checks the mode file says what
   * we ask (saying it first when nobody holds it), backs off from a
   * portable-driver holder, takes a slot, and returns the hold; null (all
   * let go) when busy.
   */
  #enter(
    path: string,
    record: HolderRecord,
    main: CachedFile,
    takeSlot: () => { slot: number; file: CachedFile } | null
  ): DriverLock | null {
    let family: CachedFile | null = null;
    let slot: { slot: number; file: CachedFile } | null = null;
    try {
      family = this.#joinFamily(path, record);
      if (family !== null && portableHolderAt(path) === null) slot = takeSlot();
    } finally {
      if (slot === null) {
        if (family !== null) this.#files.unlock(modePath(path), family, false);
        this.#files.unlock(path, main, false);
      }
    }
    if (slot === null || family === null) return null;
    return this.#hold(path, record, main, family, slot);
  }

  #hold(path: string, record: HolderRecord, main: CachedFile, family: CachedFile, slot: { slot: number; file: CachedFile }): DriverLock {
    const slotFile = slotPath(path, slot.slot);
    this.#files.write(slot.file, encodeRecord(record));
    return {
      release: () => {
        this.#files.unlock(slotFile, slot.file, false);
        this.#files.unlock(modePath(path), family, false);
        this.#files.unlock(path, main, true);
      },
      descriptor: main.fd,
      contended: () => this.writerWaits(path),
    };
  }

  /**
   * The mode file held shared, saying this request's family: written by
   * whoever finds nobody holding it. Null when it is being written (retry);
   * throws ERR_LOCK_MISMATCH when it says another family.
   */
  #joinFamily(path: string, record: HolderRecord): CachedFile | null {
    const wanted = familyOf(record);
    const file = modePath(path);
    let held = this.#files.take(file, LOCK_EX | LOCK_NB);
    if (held !== null) {
      this.#files.write(held, Buffer.from(`${wanted}\n`));
      this.#files.downgrade(held);
    } else {
      held = this.#files.take(file, LOCK_SH | LOCK_NB);
      if (held === null) return null;
    }
    const said = readHead(held.fd).toString('utf8').split('\n', 1)[0];
    if (said !== wanted && (said !== '' || !held.writable)) {
      this.#files.unlock(file, held, false);
      throw mismatch(record.name, useOf(said), record);
    }
    return held;
  }

  /** The first free slot below `count` that this thread does not hold, flocked exclusively; null when all are taken. */
  #recordSlot(path: string, count: number): { slot: number; file: CachedFile } | null {
    for (let slot = 0; slot < count; slot++) {
      const file = this.#files.take(slotPath(path, slot), LOCK_EX | LOCK_NB);
      if (file !== null) return { slot, file };
    }
    return null;
  }
}

/** The slot numbers of the files named `<prefix><n>` in `dir`, in order. */
function slotNumbers(dir: string, prefix: string): number[] {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  const slots = files.filter((file) => file.startsWith(prefix) && /^\d+$/.test(file.slice(prefix.length)));
  return slots.map((file) => Number(file.slice(prefix.length))).sort((a, b) => a - b);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closed already.
  }
}
