import type * as Crypto from 'node:crypto';

// node:crypto is loaded on first use: loading it costs 3-4 ms, a tenth of
// what the `exclusive` command adds to Node's start-up, and a posix lock with
// a short name never needs it.
let crypto: typeof Crypto | undefined;

function load(): typeof Crypto {
  return (crypto ??= require('node:crypto') as typeof Crypto);
}

/** A fresh SHA-256 hash object. */
export function sha256(): Crypto.Hash {
  return load().createHash('sha256');
}

/** `bytes` random bytes, in hex. */
export function randomHex(bytes: number): string {
  return load().randomBytes(bytes).toString('hex');
}

/** A random version 4 UUID. */
export function randomUUID(): string {
  return load().randomUUID();
}
