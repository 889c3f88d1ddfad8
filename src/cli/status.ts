import { debuglog } from 'node:util';
import { holdersOf } from '../core/hold.js';
import { target, type Target } from '../core/settings.js';
import type { HolderRecord } from '../drivers/types.js';
import { lockDirectory } from '../drivers/file/path.js';
import { parseOptions } from '../api/options.js';
import { LockDriverError, LockFileError } from '../shared/errors.js';
import type { StatusRequest } from './args.js';
import { driverFor } from './driver.js';

/** One line of `exclusive status`; also its JSON shape (missing facts are `null`, so keys are stable). */
export interface LockStatus {
  /** The lock name. */
  name: string;
  /** `free` includes a lock file left behind by a holder that died. */
  state: 'held' | 'free';
  /** The holder's pid: for a lock taken by `exclusive`, the tool's own pid. */
  pid: number | null;
  /** The holder's command line: for `exclusive`, the command it runs. */
  command: string | null;
  /** The holder's host name. */
  host: string | null;
  /** When the holder took the lock, ISO 8601. */
  since: string | null;
  /** Where the lock lives (file path, mutex name...). */
  lockfile: string;
  /** The driver asked: `posix`, `portable`, `windows` or `postgres`. */
  driver: string;
  /** How it is held: `exclusive` (also a counted lock's slots) or `shared`; null when free. */
  mode: 'exclusive' | 'shared' | null;
  /** Every holder (the fields above are the first one's): several for a shared or counted lock. */
  holders: HolderStatus[];
}

/** One holder in `exclusive status --json`. */
export interface HolderStatus {
  pid: number | null;
  mode: 'exclusive' | 'shared';
  /** A counted lock's limit and this holder's slot; null otherwise. */
  limit: number | null;
  slot: number | null;
  command: string | null;
  host: string | null;
  since: string | null;
}

/**
 * The state of the lock `request.name`, or of every lock the driver can list
 * (for the file drivers: the lock files in the directory, held or left over),
 * sorted by name. Asks the holder through the driver; never takes a lock.
 */
export async function collectStatus(request: StatusRequest): Promise<{ driver: string; rows: LockStatus[] }> {
  const settings = parseOptions({ dir: request.dir, driver: driverFor(request) });
  const { driver } = settings;
  let names: string[];
  if (request.name !== undefined) names = [request.name];
  else if (driver.list === undefined) {
    throw new LockDriverError(
      'ERR_DRIVER_UNSUPPORTED',
      `The ${driver.kind} driver cannot list its locks; ask about one: exclusive status <name>`
    );
  } else names = [...new Set(await driver.list(request.dir))].sort();
  const rows: LockStatus[] = [];
  for (const name of names) {
    const t = target(settings, name);
    const holders = await lookUp(t, request.name === undefined);
    if (holders === SKIP) continue;
    const holder = holders[0] ?? null;
    rows.push({
      name,
      state: holder === null ? 'free' : 'held',
      pid: holder?.pid ?? null,
      command: holder?.command ?? null,
      host: holder?.host ?? null,
      since: holder?.since?.toISOString() ?? null,
      lockfile: t.resource,
      driver: driver.kind,
      mode: holder === null ? null : (holder.mode ?? 'exclusive'),
      holders: holders.map(holderStatus),
    });
  }
  return { driver: driver.kind, rows };
}

function holderStatus(record: HolderRecord): HolderStatus {
  return {
    pid: record.pid,
    mode: record.mode ?? 'exclusive',
    limit: record.limit ?? null,
    slot: record.slot ?? null,
    command: record.command ?? null,
    host: record.host ?? null,
    since: record.since?.toISOString() ?? null,
  };
}

const SKIP = Symbol('skip');
const SKIPPED_WHEN_LISTING = new Set(['ERR_LOCK_FILE_UNSAFE', 'ERR_LOCK_PERMISSION']);
const debug = debuglog('exclusive-process');

/**
 * The holder of `t`. When listing, a file we refuse to use (a hard link, or
 * junk swapped in since the listing) or may not read (another user's 0600
 * file) is skipped rather than ending the whole listing: anyone can plant
 * one in a shared directory. Asked by name, both are errors.
 */
async function lookUp(t: Target, listing: boolean): Promise<HolderRecord[] | typeof SKIP> {
  try {
    return await holdersOf(t);
  } catch (error) {
    if (!listing || !(error instanceof LockFileError) || !SKIPPED_WHEN_LISTING.has(error.code)) throw error;
    debug('status: skipping %s: %s', t.resource, error.message);
    return SKIP;
  }
}

/** What the table says when there is nothing to list: where we looked, for the file drivers (`driver` is its kind). */
export function emptyMessage(request: StatusRequest, driver: string): string {
  return driver === 'posix' || driver === 'portable' ? `No locks in ${lockDirectory(request.dir)}.\n` : 'No locks.\n';
}

const COLUMNS = ['NAME', 'STATE', 'PID', 'HOST', 'SINCE', 'MODE', 'COMMAND'] as const;

/**
 * A plain table, columns separated by at least two spaces; the command
 * comes last so a long one does not push the others. Empty cells are `-`.
 * A lock with several holders (shared, counted) has a row for each.
 */
export function formatTable(rows: readonly LockStatus[]): string {
  const cells = rows.flatMap((r) =>
    (r.holders.length === 0 ? [undefined] : r.holders).map((h) =>
      [
        r.name,
        r.state,
        h?.pid == null ? (r.state === 'held' ? '?' : '-') : String(h.pid),
        h?.host ?? '-',
        shortTime(h?.since ?? null),
        h === undefined ? '-' : modeText(h),
        h?.command ?? '-',
      ].map(printable)
    )
  );
  const all = [[...COLUMNS] as string[], ...cells];
  const widths = COLUMNS.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  return (
    all
      .map((row) =>
        row
          .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i])))
          .join('  ')
          .trimEnd()
      )
      .join('\n') + '\n'
  );
}

/** `shared`, `exclusive`, or a counted lock's `slot 2/3`. */
function modeText(holder: HolderStatus): string {
  return holder.limit !== null ? `slot ${holder.slot === null ? '?' : holder.slot + 1}/${holder.limit}` : holder.mode;
}

/** `2025-06-01T12:00:00Z`: seconds are enough in a table (JSON keeps milliseconds). */
function shortTime(iso: string | null): string {
  return iso === null ? '-' : iso.replace(/\.\d+Z$/, 'Z');
}

/** Lock names are any string: escape control characters so one row stays one line. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

/** JSON: one object for a named lock, an array for the listing. */
export function formatJson(rows: readonly LockStatus[], single: boolean): string {
  return `${JSON.stringify(single ? rows[0] : rows, null, 2)}\n`;
}
