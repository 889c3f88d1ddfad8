import { MAX_LIMIT } from '../../shared/holder-record.js';
import { familyKeysOf, keyOf, slotKeysOf } from './key.js';
import { lastResult, numberOrNull, stringOrNull, type Session } from './session.js';
import { HOLDERS_SQL } from './sql.js';
import type { SessionPool } from './pool.js';
import type { HolderRecord } from '../types.js';

/** Prefix of our sessions' application_name; holders add `<pid> <since ms> <host>`. */
export const APPLICATION_NAME = 'exclusive-process';
const APPLICATION_NAME_RE = /^exclusive-process (\d+) (\d+)(?: (.*))?$/;

/**
 * What others learn of a holder beyond its application_name (63 bytes): a
 * comment opening every statement of the holding session, read back from
 * `pg_stat_activity.query` (the session's last statement; visible to the
 * same role, superusers and pg_read_all_stats). JSON in ASCII, with `/` and
 * `*` escaped so the comment can neither end nor nest early, and short enough
 * for the default track_activity_query_size (1024 bytes).
 */
const TAG_START = '/* exclusive-process ';
const TAG_MAX = 1000;
const TAG_RE = /^\/\* exclusive-process (\{.*?\}) \*\//;

/** The comment that opens every statement of a session holding for `record`. */
export function holderTag(record: HolderRecord): string {
  for (let command = record.command; ;) {
    const json = JSON.stringify(command === undefined ? {} : { command }).replace(
      /[/*\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
    );
    if (command === undefined || TAG_START.length + json.length + 4 <= TAG_MAX) return `${TAG_START}${json} */ `;
    command = `${command.slice(0, Math.floor(command.length * 0.8))}…`;
  }
}

/** The command a holder's tag names, if the asker may read its last statement. */
function commandOfTag(query: unknown): string | undefined {
  const json = typeof query === 'string' ? TAG_RE.exec(query)?.[1] : undefined;
  if (json === undefined) return undefined;
  try {
    const { command } = JSON.parse(json) as { command?: unknown };
    return typeof command === 'string' ? command : undefined;
  } catch {
    return undefined;
  }
}

/** The application_name a session holding for `record` takes: `exclusive-process <pid> <since ms> <host>`, at most 63 bytes. */
export function applicationName(record: HolderRecord): string {
  const host = (record.host ?? '').replace(/[^A-Za-z0-9._-]/g, '');
  const since = (record.since ?? new Date()).getTime();
  return `${APPLICATION_NAME} ${record.pid ?? 0} ${since} ${host}`.slice(0, 63).trimEnd();
}

/** `HolderRecord.details` of a holding session, the same whether the holder or another process asks. */
export function holderDetails(
  backendPid: number,
  applicationName: string | null,
  seen: Session['seen']
): NonNullable<HolderRecord['details']> {
  return { backendPid, applicationName, clientAddress: seen.clientAddress, clientPort: seen.clientPort, user: seen.user };
}

/**
 * Every holder of the advisory lock of `resource` (pg_locks shows shared
 * holders too), with its mode, and for a counted lock its limit and slot,
 * from the family and slot keys each holding session has; `[]` when free.
 */
export async function holdersOf(pool: SessionPool, resource: string, name: string): Promise<HolderRecord[]> {
  const key = keyOf(resource);
  const params = [key.toString(), familyKeysOf(key, MAX_LIMIT).map(String), slotKeysOf(key, MAX_LIMIT).map(String)];
  const rows = await pool.onSession('looking up the holders', async (session) => {
    const rows = lastResult(await session.query(HOLDERS_SQL, params)).rows;
    pool.give(session);
    return rows;
  });
  return rows.map((row) => withMode(holderRecordOf(row, name), row));
}

/** The mode, limit and slot of a HOLDERS_SQL row: shared (its family, or a shared lock without one), or counted. */
function withMode(record: HolderRecord, row: Record<string, unknown>): HolderRecord {
  const family = numberOrNull(row.family) ?? 0;
  if (family > 1) return { ...record, limit: family, ...(row.slot !== null && { slot: Number(row.slot) }) };
  if (family === 1 || row.lock_mode === 'ShareLock') return { ...record, mode: 'shared' };
  return record;
}

/** The holder record of a HOLDERS_SQL row: ours (named by its application_name and tag) or any other session's. */
function holderRecordOf(row: Record<string, unknown>, name: string): HolderRecord {
  const applicationName = stringOrNull(row.application_name);
  const ours = applicationName === null ? null : APPLICATION_NAME_RE.exec(applicationName);
  const seen = { clientAddress: stringOrNull(row.client_addr), clientPort: numberOrNull(row.client_port), user: stringOrNull(row.usename) };
  const record: HolderRecord = {
    name,
    pid: ours !== null ? Number(ours[1]) : null,
    details: holderDetails(Number(row.backend_pid), applicationName, seen),
  };
  const host = ours?.[3] || seen.clientAddress;
  if (host) record.host = host;
  if (ours !== null) record.since = new Date(Number(ours[2]));
  const command = ours !== null ? commandOfTag(row.query) : undefined;
  if (command !== undefined) record.command = command;
  return record;
}
