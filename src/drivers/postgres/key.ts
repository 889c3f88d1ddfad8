import { createHash } from 'node:crypto';

/**
 * Lock name -> PostgreSQL advisory lock key.
 *
 * The key is the first 8 bytes of the SHA-256 digest of the name's UTF-8
 * bytes, read as a signed big-endian 64-bit integer. Any language can take
 * the same lock; in SQL (PostgreSQL 11+):
 *
 *     SELECT ('x' || left(encode(sha256(convert_to('migrate', 'UTF8')), 'hex'), 16))::bit(64)::bigint;
 *     -- 4307694844222389748
 *
 * A stable, documented hash (not `hashtext()`, which is internal and has
 * changed between major versions). 64 bits: two distinct names collide with
 * probability ~ n^2 / 2^65, negligible for any real number of lock names.
 */
export function advisoryKeyOf(name: string): bigint {
  return createHash('sha256').update(name, 'utf8').digest().readBigInt64BE(0);
}

/**
 * How `pg_locks` shows a session advisory lock taken with one bigint key:
 * `classid` = high 32 bits, `objid` = low 32 bits (both as unsigned oids),
 * `objsubid` = 1.
 */
export function lockIds(key: bigint): { classid: string; objid: string } {
  const unsigned = BigInt.asUintN(64, key);
  return { classid: (unsigned >> 32n).toString(), objid: (unsigned & 0xffffffffn).toString() };
}

/** The advisory lock key of a resource (`postgres://host:port/database#<key>`, see `locate`). */
export function keyOf(resource: string): bigint {
  return BigInt(resource.slice(resource.lastIndexOf('#') + 1));
}

/**
 * The key of one of a name's side locks (docs/internals/modes.md), derived
 * from the name's key: the first 8 bytes of the SHA-256 digest of
 * `exclusive-process <key> <what>` (the key in decimal), signed big-endian.
 * `what` is `slot <k>` (a counted lock's slot k) or `family shared`,
 * `family limit <n>` (held shared by every shared or counted holder).
 */
export function sideKeyOf(key: bigint, what: string): bigint {
  return createHash('sha256').update(`exclusive-process ${key} ${what}`, 'utf8').digest().readBigInt64BE(0);
}

/**
 * The family keys of a name, in order: index 0 is `family shared`, index
 * n - 1 is `family limit <n>` (n from 2 to `max`), so a family's index is
 * its limit minus one.
 */
export function familyKeysOf(key: bigint, max: number): bigint[] {
  const cached = familyKeys.get(key);
  if (cached !== undefined && cached.length === max) return cached;
  const keys = Array.from({ length: max }, (_, i) => sideKeyOf(key, i === 0 ? 'family shared' : `family limit ${i + 1}`));
  if (familyKeys.size >= FAMILY_KEYS_KEPT) familyKeys.clear();
  familyKeys.set(key, keys);
  return keys;
}

/** The family keys of the names used lately: each shared or counted acquisition needs all of them (64 hashes). */
const familyKeys = new Map<bigint, bigint[]>();
const FAMILY_KEYS_KEPT = 256;

/** The slot keys of a name: `slot 0` to `slot <count - 1>`. */
export function slotKeysOf(key: bigint, count: number): bigint[] {
  return Array.from({ length: count }, (_, k) => sideKeyOf(key, `slot ${k}`));
}
