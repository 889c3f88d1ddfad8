// Entry point `exclusive-process/redis`: re-exports only.
export { redis, type RedisOptions } from './drivers/redis/index.js';
export { LockLostError } from './shared/errors.js';
export type { AsyncLockDriver } from './drivers/types.js';
