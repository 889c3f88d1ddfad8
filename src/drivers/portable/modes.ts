import { limitOf, modeOf, recordForThisProcess } from '../../shared/holder-record.js';
import { lockMismatch } from '../../shared/errors.js';
import { flockHolderAt, plainHolderAt } from '../file/proc-locks.js';
import { CLAIM_FILE_SUFFIX, createClaim, isLive, liveClaimAt, lockPathFor, newToken, readClaim, unlinkQuietly } from '../file/claim.js';
import {
  exists,
  gateClaimPath,
  markSlots,
  portableWriterWaits,
  slotClaimPath,
  slotClaimsAt,
  slotsMarkerPath,
  type SlotClaim,
} from '../file/slot-claims.js';
import { MAX_ROUNDS, reclaim, removeOwn, sweepLeftovers } from './reclaim.js';
import type { DriverLock, HolderRecord } from '../types.js';

/**
 * Shared and counted locks with claim files (docs/internals/modes.md). Each
 * shared or counted holder has a slot claim `<stem>.slot-<k>.claim` (k below
 * `limit` for a counted lock); a writer waiting while the name is used
 * shared holds the gate claim `<stem>.gate.claim`, which keeps new readers
 * out. Every one of them is a claim like `<stem>.pid`: created whole,
 * removed by its creator, reclaimed (reclaim.ts) once its creator is dead.
 *
 * Readers and the writer exclude each other as the two drivers do: each
 * creates its claim, then looks for the other's (a reader after its slot
 * for `<stem>.pid`, the writer after `<stem>.pid` for live slots), so
 * whichever looks second sees the first and backs off.
 */

/** The most slot claims a shared lock scans: past it, a reader waits as if the lock were full. */
const MAX_READER_SLOTS = 1024;

/** Which holders may share a name with `record`: `shared`, or `limit N`. */
function familyOf(record: HolderRecord): string {
  return limitOf(record) > 1 ? `limit ${limitOf(record)}` : 'shared';
}

/** True for a plain exclusive request (not shared, not counted). */
export function isPlain(record: HolderRecord): boolean {
  return modeOf(record) === 'exclusive' && limitOf(record) === 1;
}

/** A waiting writer's gate: its token (null: another writer had it when we looked), the record to take it with, and how many waits share it. */
interface Gate {
  token: string | null;
  readonly record: HolderRecord;
  count: number;
}

/** The portable driver's shared and counted holds, and its writers' gates, for one driver object. */
export class PortableModes {
  /** Claim path -> token of each claim this driver object holds (shared with the exclusive holds, for exit cleanup). */
  readonly #held: Map<string, string>;
  /** Claim paths (`<stem>.pid`) whose exclusive wait is announced. */
  readonly #gates = new Map<string, Gate>();
  /** Claim paths (`<stem>.pid`) this driver object has held shared or counted, with their names: their markers are cleared at exit. */
  readonly #used = new Map<string, string>();

  constructor(held: Map<string, string>) {
    this.#held = held;
  }

  /**
   * One try for a shared or counted hold of the name whose claim file is
   * `path`: a free slot claimed, or null when a writer holds or waits, or
   * the counted lock is full. Throws ERR_LOCK_MISMATCH when a holder uses
   * the name otherwise.
   */
  enter(path: string, record: HolderRecord): DriverLock | null {
    if (this.#held.has(path)) throw lockMismatch(record.name, {}, record); // this thread holds it plainly
    if (this.#writerIn(path, record)) return null;
    const count = limitOf(record) > 1 ? limitOf(record) : MAX_READER_SLOTS;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const slot = firstFree(this.#occupied(path, record), count);
      if (slot === undefined) return null;
      const token = newToken();
      const target = slotClaimPath(path, slot);
      if (!createClaim(path, target, record, token)) continue; // taken meanwhile: look again
      if (this.#confirm(path, record, target, token)) return this.#slotHold(path, record.name, target, token);
      return null;
    }
    return null; // others keep taking the slots we find free: busy
  }

  /**
   * True when a writer keeps a shared or counted request out: a live
   * exclusive claim, a posix-driver holder (/proc/locks), or for a shared
   * request a writer waiting (the gate claims of either driver).
   */
  #writerIn(path: string, record: HolderRecord): boolean {
    if (limitOf(record) > 1 && this.#plainHolder(path)) throw lockMismatch(record.name, {}, record);
    if (flockHolderAt(lockPathFor(path))) return true;
    if (this.#liveOrReclaimed(path, path, record)) return true;
    if (limitOf(record) > 1) return false;
    return this.#liveOrReclaimed(path, gateClaimPath(path), record) || Boolean(flockHolderAt(posixSidePath(path, 'gate')));
  }

  /** True when a live plain holder holds the name: the portable driver's `.pid` claim, or the posix driver's flock. */
  #plainHolder(path: string): boolean {
    const claim = readClaim(path);
    if (claim !== undefined && isLive(claim)) return modeOf(claim.record!) === 'exclusive' && limitOf(claim.record!) === 1;
    return plainHolderAt(lockPathFor(path));
  }

  /** True when the claim at `target` is live (or being reclaimed by a live process); a dead holder's is reclaimed. */
  #liveOrReclaimed(path: string, target: string, record: HolderRecord): boolean {
    const seen = readClaim(target);
    if (seen === undefined || isLive(seen)) return seen !== undefined;
    if (!reclaim(path, target, seen, record, 0)) return true;
    sweepLeftovers(path, record);
    return false;
  }

  /**
   * The slots taken now (live claims, and dead ones a live process is
   * reclaiming); dead holders' claims are reclaimed. Throws
   * ERR_LOCK_MISMATCH when a live holder uses the name otherwise than `record`.
   */
  #occupied(path: string, record: HolderRecord): Set<number> {
    const taken = new Set<number>();
    let swept = false;
    for (const found of slotClaimsAt(path)) {
      if (isLive(found.claim)) {
        checkFamily(found, record);
        taken.add(found.slot);
      } else if (reclaim(path, found.path, found.claim, record, 0)) swept = true;
      else taken.add(found.slot);
    }
    if (swept) sweepLeftovers(path, record);
    return taken;
  }

  /**
   * With our slot claim created: marks the name, then backs off (removing
   * the claim) from a writer that got in first, and throws ERR_LOCK_MISMATCH
   * when another family of holders did. True when the hold is ours.
   */
  #confirm(path: string, record: HolderRecord, target: string, token: string): boolean {
    let ours = false;
    try {
      markSlots(path); // after the claim: a writer removing the marker looks for slots again (see clearMarker)
      if (liveClaimAt(path) !== null || flockHolderAt(lockPathFor(path))) return false;
      for (const found of slotClaimsAt(path)) if (found.path !== target && isLive(found.claim)) checkFamily(found, record);
      ours = true;
      return true;
    } finally {
      if (!ours) removeOwn(target, token);
    }
  }

  #slotHold(path: string, name: string, target: string, token: string): DriverLock {
    this.#held.set(target, token);
    this.#used.set(path, name);
    return {
      release: () => {
        removeOwn(target, token);
        this.#held.delete(target);
      },
      contended: () => this.writerWaits(path),
    };
  }

  /** True when a writer of either driver waits for the name whose claim file is `path`. */
  writerWaits(path: string): boolean {
    return portableWriterWaits(path) || Boolean(flockHolderAt(posixSidePath(path, 'gate')));
  }

  /**
   * For a writer, before or after creating `<stem>.pid`: true when live
   * shared holders keep it out (only looked for where the marker says there
   * may be some). Throws ERR_LOCK_MISMATCH when counted holders hold it.
   */
  readersIn(path: string, record: HolderRecord): boolean {
    if (!exists(slotsMarkerPath(path))) return false;
    return this.#occupied(path, record).size > 0;
  }

  /**
   * A writer holding `<stem>.pid`: removes the marker, so the posix driver
   * stops looking for slot claims, unless a reader's claim appeared
   * meanwhile (it backs off from our claim, but must be seen by whoever
   * looks after we release).
   */
  clearMarker(path: string): void {
    const marker = slotsMarkerPath(path);
    if (!exists(marker)) return;
    unlinkQuietly(marker);
    if (slotClaimsAt(path).some(({ claim }) => isLive(claim))) markSlots(path);
  }

  /**
   * At exit: each name this process used shared or counted, and that nobody
   * holds so now, is taken exclusively for a moment through `take`, which
   * removes its marker (only an exclusive holder may, see clearMarker), so
   * no file of a free name is left behind.
   */
  clearMarkers(take: (path: string, record: HolderRecord) => DriverLock | null): void {
    for (const [path, name] of this.#used) {
      try {
        if (!exists(slotsMarkerPath(path)) || slotClaimsAt(path).some(({ claim }) => isLive(claim))) continue;
        void take(path, recordForThisProcess(name))?.release();
      } catch {
        // Exiting: a marker left behind only makes the posix driver look for slot claims of this name.
      }
    }
  }

  /** A writer's wait starts: it takes the gate (now, or at a later try), so new readers wait behind it. */
  announce(path: string, record: HolderRecord): () => void {
    if (!isPlain(record)) return () => {};
    const found = this.#gates.get(path);
    if (found !== undefined) found.count++;
    else this.#gates.set(path, { token: this.#takeGate(path, record), record, count: 1 });
    return () => this.#withdraw(path);
  }

  /** A writer's try failed: an announced wait without the gate takes it if it is free now. */
  missed(path: string): null {
    const gate = this.#gates.get(path);
    if (gate !== undefined && gate.token === null) gate.token = this.#takeGate(path, gate.record);
    return null;
  }

  /**
   * The gate claim for a writer about to wait (null: another writer has it,
   * or the name is not used shared: neither our marker nor the posix
   * driver's mode file, so no reader to keep out, and no file written for a
   * plain lock's waits). Read before created, so a failed try writes
   * nothing (it would wake every waiter's watch).
   */
  #takeGate(path: string, record: HolderRecord): string | null {
    if (!exists(slotsMarkerPath(path)) && !exists(posixSidePath(path, 'mode'))) return null;
    const gate = gateClaimPath(path);
    if (this.#liveOrReclaimed(path, gate, record)) return null;
    const token = newToken();
    if (!createClaim(path, gate, record, token)) return null;
    this.#held.set(gate, token);
    return token;
  }

  #withdraw(path: string): void {
    const gate = this.#gates.get(path)!;
    if (--gate.count > 0) return;
    this.#gates.delete(path);
    if (gate.token === null) return;
    const target = gateClaimPath(path);
    try {
      removeOwn(target, gate.token);
      this.#held.delete(target);
    } catch {
      // Cannot remove it (a read-only directory): it names us, and is reclaimed once we are gone, or at exit cleanup.
    }
  }
}

/** Throws ERR_LOCK_MISMATCH when the live holder of a slot uses the name otherwise than `record`. */
function checkFamily({ claim }: SlotClaim, record: HolderRecord): void {
  const holder = claim.record!;
  if (familyOf(holder) !== familyOf(record)) throw lockMismatch(record.name, holder, record, holder);
}

/** The first slot below `count` not in `taken`. */
function firstFree(taken: ReadonlySet<number>, count: number): number | undefined {
  for (let slot = 0; slot < count; slot++) if (!taken.has(slot)) return slot;
  return undefined;
}

/** A posix driver's file beside the claim file `path`: its `gate` (flocked by a waiting writer) or `mode` file (there once used shared). */
function posixSidePath(path: string, suffix: 'gate' | 'mode'): string {
  return `${path.slice(0, -CLAIM_FILE_SUFFIX.length)}.${suffix}`;
}
