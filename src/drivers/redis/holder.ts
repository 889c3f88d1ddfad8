import type { HolderRecord } from '../types.js';

/**
 * The holder record kept beside each hold (the `records` hash): what
 * `holder()`, `holders()` and `exclusive status` report. The scripts store
 * `<kind> <limit> <slot> <fence> ` before the JSON; correctness never depends
 * on the JSON, and anything malformed reads as an unknown holder.
 */

/** The JSON a holder stores about itself. */
export function recordJson(record: HolderRecord): string {
  return JSON.stringify({
    pid: record.pid,
    host: record.host,
    command: record.command,
    since: (record.since ?? new Date()).getTime(),
    start: record.start,
  });
}

const VALUE_RE = /^([xsc]) (\d+) (-?\d+) (\d+) (.*)$/s;

/** The holder record of one stored value, as others (and the holder) see it. */
export function recordOfValue(value: unknown, name: string): HolderRecord {
  const match = typeof value === 'string' ? VALUE_RE.exec(value) : null;
  if (match === null) return { name, pid: null };
  const [, kind, limit, slot, fence, json] = match;
  const record: HolderRecord = { name, pid: null, details: { fencingToken: fence } };
  if (kind === 's') record.mode = 'shared';
  if (kind === 'c') {
    record.mode = 'exclusive';
    record.limit = Number(limit);
    record.slot = Number(slot);
  }
  Object.assign(record, fieldsOfJson(json));
  return record;
}

function fieldsOfJson(json: string): Partial<HolderRecord> {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return {};
  }
  const fields: Partial<HolderRecord> = {};
  if (typeof parsed.pid === 'number') fields.pid = parsed.pid;
  if (typeof parsed.host === 'string') fields.host = parsed.host;
  if (typeof parsed.command === 'string') fields.command = parsed.command;
  if (typeof parsed.since === 'number') fields.since = new Date(parsed.since);
  if (typeof parsed.start === 'string') fields.start = parsed.start;
  return fields;
}
