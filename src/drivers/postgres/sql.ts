/**
 * The SQL text of the PostgreSQL driver. Why each statement is shaped as it
 * is (guard, fencing token, WAL message): see docs/internals/postgres-lease.md.
 */

/**
 * The session guard, part of every statement that takes a lock: true only
 * in the session we prepared ($3, $4: its backend pid and random marker)
 * while it holds no lock of ours (`exclusive_process.holding`). So a lock is
 * never taken in a session that a transaction-mode pooler (PgBouncer)
 * happened to pick, nor re-entered (advisory locks are reentrant) in a
 * pooled server session that already holds it for another client.
 */
const OUR_SESSION =
  "pg_backend_pid() = $3::int AND current_setting('exclusive_process.session', true) = $4::text " +
  "AND coalesce(current_setting('exclusive_process.holding', true), '') = ''";

/**
 * Columns computed once the lock is granted (`<granted>`): the fencing
 * token; a transactional WAL message, so that this statement's commit is
 * flushed like any write before we return (the session forces
 * synchronous_commit on, see sessionSetup), and the token can never be handed
 * out again after a server crash or failover (a transaction that only takes
 * an id writes no WAL, commits asynchronously, and its id may be reissued
 * after a crash; so may any under synchronous_commit = off); the holder's name tag; the
 * holding flag.
 */
const AFTER_GRANT = (granted: string): string =>
  `CASE WHEN ${granted} THEN pg_current_xact_id()::text END AS token, ` +
  `CASE WHEN ${granted} THEN pg_logical_emit_message(true, 'exclusive-process', $1::bigint::text)::text END AS wal, ` +
  `CASE WHEN ${granted} THEN set_config('application_name', $2::text, false) END AS app, ` +
  `CASE WHEN ${granted} THEN set_config('exclusive_process.holding', $1::bigint::text, false) END AS holding`;

// OFFSET 0 keeps the subquery (the lock) evaluated before the outer
// projection, so the token is taken after the lock is granted.
// `ok` is null when the guard failed. `_shared`: the same, shared.
export const TRY_SQL = trySql('pg_try_advisory_lock');
export const TRY_SHARED_SQL = trySql('pg_try_advisory_lock_shared');

function trySql(lock: string): string {
  return `SELECT t.ok, ${AFTER_GRANT('t.ok')} FROM (SELECT CASE WHEN ${OUR_SESSION} THEN ${lock}($1::bigint) END AS ok OFFSET 0) t`;
}

// The same as a wait: `locked` is '' once granted, null when the guard failed.
export const WAIT_SQL = waitSql('pg_advisory_lock');
export const WAIT_SHARED_SQL = waitSql('pg_advisory_lock_shared');

function waitSql(lock: string): string {
  return (
    `SELECT t.locked, ${AFTER_GRANT('t.locked IS NOT NULL')} ` +
    `FROM (SELECT CASE WHEN ${OUR_SESSION} THEN ${lock}($1::bigint)::text END AS locked OFFSET 0) t`
  );
}

export const UNLOCK_SQL = "SELECT pg_advisory_unlock($1::bigint) AS ok, set_config('exclusive_process.holding', '', false) AS holding";

/**
 * Gives up a shared or counted hold: the name's key (shared), and with
 * pg_advisory_unlock_all its family and slot keys, all this session holds.
 */
export const UNLOCK_MODES_SQL =
  "SELECT t.ok, set_config('exclusive_process.holding', '', false) AS holding " +
  'FROM (SELECT pg_advisory_unlock_shared($1::bigint) AS ok, pg_advisory_unlock_all()::text AS rest OFFSET 0) t';

/** True only in the session we prepared ($1, $2: its backend pid and marker), whatever it holds. */
const SAME_SESSION = "pg_backend_pid() = $1::int AND current_setting('exclusive_process.session', true) = $2::text";

/** After a shared or counted request got the name's key: its family key ($3), shared. Null when the guard failed. */
export const JOIN_FAMILY_SQL = `SELECT CASE WHEN ${SAME_SESSION} THEN pg_try_advisory_lock_shared($3::bigint) END AS ok`;

/**
 * A counted request's slot: the first of the slot keys ($3) this session
 * gets, numbered from 0; -1 when all are taken; null when the guard failed.
 */
export const TAKE_SLOT_SQL =
  `SELECT CASE WHEN ${SAME_SESSION} THEN coalesce((SELECT s.i - 1 FROM unnest($3::bigint[]) WITH ORDINALITY AS s(key, i) ` +
  `WHERE CASE WHEN ${SAME_SESSION} THEN pg_try_advisory_lock(s.key) END LIMIT 1), -1) END AS slot`;

/** Lets go of everything a session got for a request that then failed (mismatch, no slot). Null when the guard failed. */
export const UNLOCK_ALL_SQL =
  `SELECT CASE WHEN ${SAME_SESSION} THEN pg_advisory_unlock_all()::text END AS done, ` +
  "set_config('exclusive_process.holding', '', false) AS holding";

/** The session advisory locks of this database taken with one bigint key, as (pid, mode, granted, key). */
const ADVISORY_LOCKS =
  'SELECT pid, mode, granted, (classid::bigint << 32) | objid::bigint AS key FROM pg_locks ' +
  "WHERE locktype = 'advisory' AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/**
 * What keeps a request out of the name's key ($1): whether a plain holder has
 * it (exclusive), and the families ($2: every family key) held now, as
 * 1-based positions in $2 (1: shared, n: limit n).
 */
export const BLOCKERS_SQL =
  `WITH l AS MATERIALIZED (${ADVISORY_LOCKS}) ` +
  "SELECT EXISTS (SELECT 1 FROM l WHERE l.key = $1::bigint AND l.granted AND l.mode = 'ExclusiveLock') AS plain, " +
  '(SELECT array_agg(DISTINCT array_position($2::bigint[], l.key)) FROM l WHERE l.granted AND l.key = ANY ($2::bigint[])) AS families';

/** The families held now, as BLOCKERS_SQL's `families` ($1: every family key). */
export const FAMILIES_SQL =
  `SELECT array_agg(DISTINCT array_position($1::bigint[], l.key)) AS families FROM (${ADVISORY_LOCKS}) l ` +
  'WHERE l.granted AND l.key = ANY ($1::bigint[])';

/** True when an exclusive request waits for the name's key ($1) in the server's queue. */
export const WRITER_WAITS_SQL = `SELECT EXISTS (SELECT 1 FROM (${ADVISORY_LOCKS}) l WHERE l.key = $1::bigint AND NOT l.granted AND l.mode = 'ExclusiveLock') AS waits`;

export const HELD_BY_US_SQL =
  "SELECT pg_backend_pid() AS pid, current_setting('exclusive_process.session', true) AS marker, " +
  "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted " +
  'AND pid = pg_backend_pid() AND classid = $1::oid AND objid = $2::oid AND objsubid = 1 ' +
  'AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS held';

/**
 * Every holder of the name's key ($1), with its lock mode, family (a
 * 1-based position in $2, every family key) and slot (0-based, in $3, the
 * slot keys): slots first, in order, then by backend pid.
 */
export const HOLDERS_SQL =
  `WITH l AS MATERIALIZED (${ADVISORY_LOCKS}) ` +
  'SELECT h.pid AS backend_pid, h.mode AS lock_mode, ' +
  '(SELECT array_position($2::bigint[], f.key) FROM l f WHERE f.pid = h.pid AND f.granted AND f.key = ANY ($2::bigint[]) LIMIT 1) AS family, ' +
  '(SELECT array_position($3::bigint[], s.key) - 1 FROM l s WHERE s.pid = h.pid AND s.granted AND s.key = ANY ($3::bigint[]) LIMIT 1) AS slot, ' +
  'a.application_name, host(a.client_addr) AS client_addr, a.client_port, a.usename, a.query ' +
  'FROM l h LEFT JOIN pg_stat_activity a ON a.pid = h.pid ' +
  'WHERE h.granted AND h.key = $1::bigint ORDER BY slot NULLS LAST, h.pid';

/** `SET lock_timeout` for a wait of `timeoutMs`: 0 = wait for ever; otherwise the server gives up itself (SQLSTATE 55P03). */
export function lockTimeoutSql(timeoutMs: number | undefined): string {
  const ms = timeoutMs === undefined || !Number.isFinite(timeoutMs) ? 0 : Math.min(0x7fffffff, Math.max(1, Math.ceil(timeoutMs)));
  return `SET lock_timeout = ${ms}`;
}

/**
 * The session's setup, in one round trip. idle_session_timeout is what ends
 * the session of a frozen (SIGSTOP) or partitioned holder, and so frees its
 * lock: the holder's heartbeat keeps it from firing while the holder is
 * alive. client_connection_check_interval makes a backend waiting for a lock
 * notice its client died. statement_timeout/lock_timeout from the role's
 * defaults must not end our waits. synchronous_commit: a fencing token is
 * returned only once its commit is flushed (see AFTER_GRANT), whatever the
 * server's, role's or database's default; remote_apply, stronger, is kept.
 * The last statement reports the backend and how the server sees us.
 */
export function sessionSetup(sessionTimeoutMs: number, marker: string): string {
  const t = sessionTimeoutMs;
  return [
    `SET application_name = 'exclusive-process'`,
    'SET statement_timeout = 0',
    'SET lock_timeout = 0',
    'SET idle_in_transaction_session_timeout = 0',
    `SET idle_session_timeout = ${t}`,
    `SET client_connection_check_interval = ${Math.min(1000, t)}`,
    `SET tcp_keepalives_idle = ${Math.max(1, Math.floor(t / 2000))}`,
    'SET tcp_keepalives_interval = 1',
    'SET tcp_keepalives_count = 3',
    "SELECT set_config('synchronous_commit', CASE current_setting('synchronous_commit') WHEN 'remote_apply' THEN 'remote_apply' ELSE 'on' END, false)",
    `SET exclusive_process.session = '${marker}'`,
    'SELECT b.pid, host(a.client_addr) AS client_addr, a.client_port, a.usename ' +
      'FROM (SELECT pg_backend_pid() AS pid) b LEFT JOIN pg_stat_activity a ON a.pid = b.pid',
  ].join('; ');
}
