import { closeSync, constants, lstatSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LockFileError } from '../../shared/errors.js';
import { CLAIM_FILE_SUFFIX, claimPathFor, isLive, liveClaimAt, readClaim, SLOTS_MARKER_SUFFIX, type Claim } from './claim.js';
import { code, createExclusive, lockFileError } from './lock-file.js';
import type { HolderRecord } from '../types.js';

/**
 * The portable driver's shared and counted claims (docs/internals/modes.md),
 * beside a name's `<stem>.pid` and named from the same stem: each shared or
 * counted holder's claim `<stem>.slot-<k>.claim`, a waiting writer's
 * `<stem>.gate.claim`, and the marker `<stem>.slots`, which exists while
 * slot claims may (so the posix driver looks for them only then). Never
 * `<stem>.slot-<k>.pid`: that is the claim of the name `<name>.slot-<k>`.
 */

const SLOT = /^slot-(0|[1-9]\d{0,5})\.claim$/;

/** `<stem>` of the claim file `<stem>.pid`. */
const stemOf = (claimPath: string): string => claimPath.slice(0, -CLAIM_FILE_SUFFIX.length);

/** The claim of slot `slot` beside the claim file `claimPath`. */
export const slotClaimPath = (claimPath: string, slot: number): string => `${stemOf(claimPath)}.slot-${slot}.claim`;
/** A waiting writer's claim beside the claim file `claimPath`. */
export const gateClaimPath = (claimPath: string): string => `${stemOf(claimPath)}.gate.claim`;
/** The marker that slot claims may exist beside the claim file `claimPath`. */
export const slotsMarkerPath = (claimPath: string): string => `${stemOf(claimPath)}${SLOTS_MARKER_SUFFIX}`;

/** A slot claim as found beside a claim file. */
export interface SlotClaim {
  readonly slot: number;
  readonly path: string;
  readonly claim: Claim;
}

/**
 * The slot claims beside the claim file `claimPath` (one readdir), in slot
 * order, as read: live or not. Throws the LockFileError of one that is
 * unreadable (another user's 0600 file), or unsafe (not a regular file)
 * unless `skipUnsafe`: then it is passed over, and the others still count.
 *
 * @example
 * ```ts
 * slotClaimsAt('/run/lock/exclusive-process.x.pid'); // [{ slot: 0, path: '.../exclusive-process.x.slot-0.claim', claim }]
 * ```
 */
export function slotClaimsAt(claimPath: string, skipUnsafe = false): SlotClaim[] {
  const dir = dirname(claimPath);
  const prefix = `${basename(stemOf(claimPath))}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return []; // no directory yet: no claims
  }
  const found: SlotClaim[] = [];
  for (const name of names) {
    const slot = name.startsWith(prefix) ? SLOT.exec(name.slice(prefix.length))?.[1] : undefined;
    if (slot === undefined) continue;
    const path = join(dir, name);
    const claim = readSlotClaim(path, skipUnsafe);
    if (claim !== undefined) found.push({ slot: Number(slot), path, claim });
  }
  return found.sort((a, b) => a.slot - b.slot);
}

function readSlotClaim(path: string, skipUnsafe: boolean): Claim | undefined {
  try {
    return readClaim(path);
  } catch (error) {
    if (skipUnsafe && error instanceof LockFileError && error.code === 'ERR_LOCK_FILE_UNSAFE') return undefined;
    throw error;
  }
}

/**
 * The records of the live slot claims beside `claimPath`, in slot order:
 * a counted holder's with its `slot`.
 *
 * @example
 * ```ts
 * liveSlotHolders(claimPath); // [{ name: 'encode', pid: 11, limit: 3, slot: 0, ... }]
 * ```
 */
export function liveSlotHolders(claimPath: string, skipUnsafe = false): HolderRecord[] {
  return slotClaimsAt(claimPath, skipUnsafe)
    .filter(({ claim }) => isLive(claim))
    .map(({ slot, claim }) => ((claim.record!.limit ?? 1) > 1 ? { ...claim.record!, slot } : claim.record!));
}

/**
 * A live portable-driver holder of the name whose posix lock file is
 * `lockPath`: its exclusive claim, else (when the marker says there may be
 * some) a shared or counted holder's slot claim; null when none. For the
 * posix driver, after it flocked `lockPath`: cheap (one lstat) when no
 * portable process holds the name. A claim we may not read is never taken
 * for free (ERR_LOCK_PERMISSION); a planted non-file is nobody's hold (and
 * hides no other).
 *
 * @example
 * ```ts
 * portableHolderAt('/run/lock/exclusive-process.x.lock'); // null
 * ```
 */
export function portableHolderAt(lockPath: string): HolderRecord | null {
  const claimPath = claimPathFor(lockPath);
  const holder = liveClaimAt(claimPath);
  if (holder !== null || !exists(slotsMarkerPath(claimPath))) return holder;
  return liveSlotHolders(claimPath, true)[0] ?? null;
}

/**
 * True when a portable-driver writer waits for the name whose claim file is
 * `claimPath`: its gate claim is live (unreadable or unsafe: no).
 *
 * @example
 * ```ts
 * if (portableWriterWaits(claimPathFor(lockPath))) return null; // a reader stays out
 * ```
 */
export function portableWriterWaits(claimPath: string): boolean {
  try {
    const gate = readClaim(gateClaimPath(claimPath));
    return gate !== undefined && isLive(gate);
  } catch {
    return false;
  }
}

/**
 * Creates the marker that slot claims may exist beside `claimPath` (a
 * no-op when it does). An empty file, never read, written or followed.
 *
 * @example
 * ```ts
 * markSlots(claimPath); // now the posix driver looks for slot claims of this name
 * ```
 */
export function markSlots(claimPath: string): void {
  const marker = slotsMarkerPath(claimPath);
  if (exists(marker)) return;
  try {
    closeSync(createExclusive(marker, constants.O_WRONLY));
  } catch (error) {
    if (code(error) === 'EEXIST') return;
    throw lockFileError(error, marker);
  }
}

/** True when something is at `path` (never followed). */
export function exists(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}
