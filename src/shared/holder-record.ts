import { currentProcess } from './process-identity.js';

/**
 * What a holder records about itself, and what `Exclusive.holder()` reports.
 *
 * @example
 * ```ts
 * const record: HolderRecord = { name: 'nightly', pid: 4242, host: 'db1', since: new Date() };
 * ```
 */
export interface HolderRecord {
  /** The lock name. */
  name: string;
  /** The holder's process id, or `null` when the lock is held but the holder is unknown. */
  pid: number | null;
  /** Host name of the holder. */
  host?: string;
  /** The holder's command line (truncated). */
  command?: string;
  /** When the holder acquired the lock. */
  since?: Date;
  /**
   * Process start time as the OS reports it (Linux: clock ticks since boot;
   * Windows: creation time), so a reused pid is not believed.
   */
  start?: string;
  /** Extra details a driver knows (e.g. a database session's client address). */
  details?: Readonly<Record<string, string | number | boolean | null>>;
  /** How the holder holds it: `'shared'` for a shared holder; absent (or `'exclusive'`) for an exclusive or counted one. */
  mode?: LockMode;
  /** A counted lock's `limit` (absent for a plain or shared lock: 1). */
  limit?: number;
  /** The slot a counted holder occupies (0 to `limit - 1`), as its driver reports it. */
  slot?: number;
}

/**
 * How a lock is held: `'exclusive'` (the default: one holder) or `'shared'`
 * (many shared holders at once, never with an exclusive one), as in the Web Locks API.
 *
 * @example
 * ```ts
 * const mode: LockMode = 'shared';
 * ```
 */
export type LockMode = 'exclusive' | 'shared';

/**
 * The holder record written into lock files (or beside a mutex) after a lock
 * is acquired: one line of JSON. It serves messages and `holder()` only;
 * correctness never depends on it, and anything malformed reads as unknown.
 */

/** A record describing this process as the holder of `name`, acquired now (`command` defaults to this process's command line). */
export function recordForThisProcess(name: string, command?: string, mode: LockMode = 'exclusive', limit = 1): HolderRecord {
  const self = currentProcess();
  const record: HolderRecord = {
    name,
    pid: self.pid,
    start: self.start,
    host: self.host,
    command: command ?? self.command,
    since: new Date(),
  };
  if (mode === 'shared') record.mode = mode;
  if (limit > 1) record.limit = limit;
  return record;
}

/** The mode a record asks for or holds in (absent: exclusive). */
export function modeOf(record: HolderRecord): LockMode {
  return record.mode ?? 'exclusive';
}

/** The largest `limit`: each slot is a file, OS object or advisory key, and a full lock is scanned slot by slot. */
export const MAX_LIMIT = 64;

/** The limit a record asks for or holds with (absent: 1, a plain or shared lock). */
export function limitOf(record: HolderRecord): number {
  return record.limit ?? 1;
}

/** The JSON of the last record's fixed fields, without its closing brace: only `since` changes between acquisitions of a lock. */
let last: { name: string; pid: number | null; start?: string; host?: string; command?: string; kind: string; head: string } | undefined;

/** The record as written to disk: JSON ended by a newline, so a longer old record left behind is ignored without truncating. */
export function encodeRecord(record: HolderRecord): Buffer {
  const { name, pid, start, host, command, since, mode, limit } = record;
  const kind = `${mode ?? ''}/${limit ?? ''}`;
  if (
    last?.name !== name ||
    last.pid !== pid ||
    last.start !== start ||
    last.host !== host ||
    last.command !== command ||
    last.kind !== kind
  ) {
    const head = JSON.stringify({ v: 1, name, pid, start, host, command, mode, limit }).slice(0, -1);
    last = { name, pid, start, host, command, kind, head };
  }
  return Buffer.from(`${last.head}${since === undefined ? '' : `,"since":"${since.toISOString()}"`}}\n`);
}

const MAX_PID = 0x7fffffff;

/** Parses what {@link encodeRecord} wrote; returns null for anything else (garbage, `0`, huge numbers, truncation). */
export function decodeRecord(bytes: Buffer | string): HolderRecord | null {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  const end = text.indexOf('\n');
  if (end < 0) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text.slice(0, end));
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  if (r.v !== 1 || typeof r.name !== 'string') return null;
  if (!Number.isSafeInteger(r.pid) || (r.pid as number) < 1 || (r.pid as number) > MAX_PID) return null;
  const since = typeof r.since === 'string' ? new Date(r.since) : undefined;
  const record: HolderRecord = {
    name: r.name,
    pid: r.pid as number,
    start: typeof r.start === 'string' ? r.start : undefined,
    host: typeof r.host === 'string' ? r.host : undefined,
    command: typeof r.command === 'string' ? r.command : undefined,
    since: since !== undefined && !Number.isNaN(since.getTime()) ? since : undefined,
  };
  if (r.mode === 'shared') record.mode = 'shared';
  if (Number.isSafeInteger(r.limit) && (r.limit as number) > 1) record.limit = r.limit as number;
  return record;
}

/** True when `record` names this process: its pid, and its host and start time where recorded (a postgres holder may be another host's pid). */
export function isThisProcess(record: HolderRecord): boolean {
  const self = currentProcess();
  return (
    record.pid === self.pid &&
    isThisHost(record.host) &&
    (record.start === undefined || self.start === undefined || record.start === self.start)
  );
}

/** True when `host` (from a holder record) is this machine's name, or unknown. */
export function isThisHost(host: string | undefined): boolean {
  return host === undefined || host === currentProcess().host;
}
