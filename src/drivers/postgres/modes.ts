import { lockMismatch } from '../../shared/errors.js';
import { limitOf, MAX_LIMIT, modeOf } from '../../shared/holder-record.js';
import { sleep } from '../../shared/sleep.js';
import { holderTag } from './holder.js';
import { familyKeysOf, slotKeysOf } from './key.js';
import { lastRow, type Session } from './session.js';
import { BLOCKERS_SQL, FAMILIES_SQL, JOIN_FAMILY_SQL, TAKE_SLOT_SQL, UNLOCK_ALL_SQL } from './sql.js';
import type { HolderRecord } from '../types.js';

/**
 * Shared and counted locks on advisory keys (docs/internals/modes.md). Every
 * shared or counted holder holds, on its own session:
 * - the name's key shared (a plain holder has it exclusively, so each keeps
 *   the other out; the server queues a new shared request behind a waiting
 *   exclusive one, so writers are not starved);
 * - its family key shared (`family shared`, `family limit N`): who finds
 *   another family held gets ERR_LOCK_MISMATCH;
 * - for a counted lock, one slot key exclusively (`slot k`, k < limit).
 * The server drops them all when the session ends (the holder died).
 */

/** What a request asks for: a plain lock, a shared one, or a counted one (limit above 1). */
export type Use = 'plain' | 'shared' | 'counted';

export function useOf(record: HolderRecord): Use {
  return limitOf(record) > 1 ? 'counted' : modeOf(record) === 'shared' ? 'shared' : 'plain';
}

/** The index of a request's family among familyKeysOf(): 0 for shared, limit - 1 for counted. */
function familyIndex(record: HolderRecord): number {
  return limitOf(record) - 1;
}

/** The use a family's 1-based position in the family keys (as the SQL reports it) describes, for messages. */
function heldUse(position: number): Pick<HolderRecord, 'mode' | 'limit'> {
  return position <= 1 ? { mode: 'shared' } : { limit: position };
}

/** The guard parameters of statements on `session` ($1, $2: backend pid and marker). */
function guard(session: Session): unknown[] {
  return [session.backendPid, session.marker];
}

/**
 * With the name's key held shared on `session` (and a counted request's
 * slot): joins the request's family. True once joined; false (all let go)
 * when it could not; throws ERR_LOCK_MISMATCH (all let go) when another
 * family is held. `foreign` is the error for a session that is not ours (a pooler).
 */
export async function joinFamily(session: Session, key: bigint, record: HolderRecord, foreign: () => Error): Promise<boolean> {
  const tag = holderTag(record);
  let joined = false;
  try {
    const families = familyKeysOf(key, MAX_LIMIT);
    const mine = families[familyIndex(record)];
    const ok = lastRow(await session.query(tag + JOIN_FAMILY_SQL, [...guard(session), mine.toString()])).ok;
    if (ok === null) throw foreign();
    if (ok !== true) return false; // only another program could hold a family key exclusively
    // Read after joining: of two families entering at once, at least one sees the other.
    const held = positions(lastRow(await session.query(tag + FAMILIES_SQL, [families.map(String)])).families);
    const other = held.find((position) => position !== familyIndex(record) + 1);
    if (other !== undefined) throw lockMismatch(record.name, heldUse(other), record);
    joined = true;
  } finally {
    if (!joined) await unlockAll(session, foreign);
  }
  return joined;
}

/**
 * A counted request's slot, taken before the name's key (a full lock's
 * waiters try again and again: their tries cost no fencing token, no WAL):
 * the first free slot below its limit, or null when all are taken.
 */
export async function takeSlot(session: Session, key: bigint, record: HolderRecord, foreign: () => Error): Promise<number | null> {
  const slots = slotKeysOf(key, limitOf(record)).map(String);
  const { slot } = lastRow(await session.query(holderTag(record) + TAKE_SLOT_SQL, [...guard(session), slots]));
  if (slot === null) throw foreign();
  return Number(slot) >= 0 ? Number(slot) : null;
}

/** Lets go of every advisory lock of `session` (a request that failed after getting some). */
export async function unlockAll(session: Session, foreign: () => Error): Promise<void> {
  if (session.dead !== undefined) return;
  const row = lastRow(await session.query(UNLOCK_ALL_SQL, guard(session)));
  if (row.done === null) throw foreign();
}

/**
 * After a request found the lock busy: throws ERR_LOCK_MISMATCH when what
 * keeps it out is a use of the name that disagrees with it (a counted lock
 * against a plain request; a plain holder or another family against a
 * counted one). Shared and plain requests waiting for each other are not at odds.
 */
export async function checkBlockers(session: Session, key: bigint, record: HolderRecord): Promise<void> {
  const use = useOf(record);
  if (use === 'shared') return;
  const families = familyKeysOf(key, MAX_LIMIT).map(String);
  const row = lastRow(await session.query(BLOCKERS_SQL, [key.toString(), families]));
  if (use === 'counted' && row.plain === true) throw lockMismatch(record.name, {}, record);
  const held = positions(row.families);
  const other = use === 'plain' ? held.find((position) => position > 1) : held.find((position) => position !== familyIndex(record) + 1);
  if (other !== undefined) throw lockMismatch(record.name, heldUse(other), record);
}

/** The family positions of an `array_agg` column (null when none). */
function positions(value: unknown): number[] {
  return Array.isArray(value) ? value.map(Number) : [];
}

/**
 * A counted request's wait: a slot is not a queue the server keeps, so it
 * tries again and again (every 5 ms at first, then at most every 50 ms)
 * until it gets one, `signal` aborts or `timeoutMs` passes (then null). A
 * slot freed by a holder's death is found at the next try.
 */
export async function pollCounted<T>(
  attempt: () => Promise<T | null>,
  signal: AbortSignal,
  timeoutMs: number | undefined
): Promise<T | null> {
  const deadline = performance.now() + (timeoutMs ?? Infinity);
  for (let delay = 5; !signal.aborted; delay = Math.min(delay * 2, 50)) {
    const lock = await attempt();
    if (lock !== null) return lock;
    const left = deadline - performance.now();
    if (left <= 0) return null;
    await sleep(Math.min(delay, left), signal);
  }
  return null;
}
