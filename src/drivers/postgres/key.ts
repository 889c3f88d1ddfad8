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
