/**
 * Lock name -> Redis keys. Every key of one lock shares the hash tag
 * `{<name>}`, so in Redis Cluster they live in one slot (a script may only
 * touch keys of one slot). `%`, `{` and `}` in a name are percent-encoded:
 * the tag then always ends where the name does, and stays one-to-one.
 */

/** The keys and the wake-up channel of one lock. */
export interface LockKeys {
  readonly holders: string;
  readonly records: string;
  readonly fence: string;
  readonly writers: string;
  readonly channel: string;
}

/** `<prefix>{<name>}`: the common start of a lock's keys. */
export function keyBase(prefix: string, name: string): string {
  return `${prefix}{${name.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}}`;
}

export function keysOf(base: string): LockKeys {
  return {
    holders: `${base}:holders`,
    records: `${base}:records`,
    fence: `${base}:fence`,
    writers: `${base}:writers`,
    channel: `${base}:wake`,
  };
}

/** The four keys a script takes, in its KEYS order. */
export function scriptKeys(keys: LockKeys): string[] {
  return [keys.holders, keys.records, keys.fence, keys.writers];
}

/** The lock name of a `…:holders` key under `prefix` (for `exclusive status`), or undefined when it is not one. */
export function nameOfHoldersKey(prefix: string, key: string): string | undefined {
  if (!key.startsWith(`${prefix}{`) || !key.endsWith('}:holders')) return undefined;
  return decodeURIComponent(key.slice(prefix.length + 1, -'}:holders'.length));
}
