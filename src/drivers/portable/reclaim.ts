import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  createClaim,
  isLive,
  newToken,
  readClaim,
  tempPath,
  unlinkClaim,
  unlinkQuietly,
  unlinkStaleClaim,
  type Claim,
} from '../file/claim.js';
import type { HolderRecord } from '../types.js';

/**
 * Reclaiming a dead holder's claim with exactly one winner: a claim is
 * unlinked only by its creator or by whoever holds its reclaim guard
 * (`<lock>.<token>.reclaim`, itself a claim). See docs/internals/portable-reclaim.md.
 */

/** What follows `<lock>.` in a temp file or reclaim guard name: a token (or a hashed id, `x` + 23 hex digits), then the kind. */
const LEFTOVER = /^(?:[0-9a-f]{24}|x[0-9a-f]{23})\.(tmp|reclaim)$/;
/** Attempts of one tryLock (or one reclaim) when others keep creating and removing the file. */
export const MAX_ROUNDS = 100;
/** Levels of guards reclaimed in a row (each needs a crash mid-reclaim). */
const MAX_DEPTH = 8;

/**
 * Removes the stale claim `seen` at `target` under its guard. True when
 * `target` no longer holds `seen` (we removed it, or someone did before
 * us); false when a live process is reclaiming it (it will hold the lock),
 * or after MAX_ROUNDS / MAX_DEPTH: the caller then reports the lock held
 * and its poll retries.
 */
export function reclaim(path: string, target: string, seen: Claim, record: HolderRecord, depth: number): boolean {
  const guard = `${path}.${seen.id}.reclaim`;
  for (let round = 0; ;) {
    const token = newToken();
    if (createClaim(path, guard, record, token)) {
      unlinkUnderGuard(path, target, seen, guard, token);
      return true;
    }
    const other = readClaim(guard);
    // A live process is reclaiming: it will hold the lock. Say so now and
    // let the caller's wait policy retry, rather than block the thread.
    if (other !== undefined && isLive(other)) return false;
    if (++round > MAX_ROUNDS) return false;
    if (other === undefined) continue; // its reclaimer just finished: take the guard and look again
    if (depth >= MAX_DEPTH || !reclaim(path, guard, other, record, depth + 1)) return false;
  }
}

/** Holding `guard` (our claim with `token`): unlinks `target` if it still holds `seen`, then lets the guard go. */
function unlinkUnderGuard(path: string, target: string, seen: Claim, guard: string, token: string): void {
  try {
    if (readClaim(target)?.id === seen.id) {
      unlinkStaleClaim(target, seen);
      // The stale creator may have died between link() and removing its temp file.
      if (seen.token !== undefined) unlinkQuietly(tempPath(path, seen.token));
    }
  } finally {
    removeOwn(guard, token);
  }
}

/**
 * Removes what processes that died mid-acquisition left beside the lock
 * file at `path`: temp files never linked (a live creator whose temp file
 * goes just tries again, see createClaim), and reclaim guards whose
 * creators died, through their own guards like any stale claim. They
 * never block anyone, but would pile up.
 */
export function sweepLeftovers(path: string, record: HolderRecord): void {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    // Exactly `<lock>.<token or id>.tmp|.reclaim`: not the files of another lock whose name starts like ours.
    const kind = name.startsWith(prefix) ? LEFTOVER.exec(name.slice(prefix.length))?.[1] : undefined;
    if (kind === undefined) continue;
    const leftover = join(dirname(path), name);
    try {
      const claim = readClaim(leftover);
      if (claim === undefined || isLive(claim)) continue;
      if (kind === 'tmp') unlinkQuietly(leftover);
      else reclaim(path, leftover, claim, record, 1);
    } catch {
      // Not a regular file, or not ours to remove: leave it.
    }
  }
}

/**
 * Unlinks the claim at `path` if it is still the one with `token`. Safe
 * between the read and the unlink: the only others who may remove our claim
 * hold its guard, which needs us to be dead.
 */
export function removeOwn(path: string, token: string): void {
  let ours: boolean;
  try {
    ours = readClaim(path)?.token === token;
  } catch {
    return; // replaced by something unsafe: not ours any more
  }
  if (ours) unlinkClaim(path); // a LockFileError when it cannot be removed: the lock is still held
}
