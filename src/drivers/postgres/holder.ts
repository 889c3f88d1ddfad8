import { keyOf, lockIds } from './key.js';
import { numberOrNull, stringOrNull, type Session } from './session.js';
import { HOLDER_SQL } from './sql.js';
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

/** The holder of the advisory lock of `resource`, from pg_locks and pg_stat_activity; null when free. */
export async function holderOf(pool: SessionPool, resource: string, name: string): Promise<HolderRecord | null> {
  const { classid, objid } = lockIds(keyOf(resource));
  const row = await pool.onSession('looking up the holder', async (session) => {
    const result = await session.query(HOLDER_SQL, [classid, objid]);
    pool.give(session);
    return (Array.isArray(result) ? result[result.length - 1] : result).rows[0];
  });
  return row === undefined ? null : holderRecordOf(row, name);
}

/** The holder record of a HOLDER_SQL row: ours (named by its application_name and tag) or any other session's. */
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
