// Entry point `exclusive-process/postgres`: re-exports only.
export { advisoryKey, postgres, type PostgresOptions } from './drivers/postgres/index.js';
export { LockLostError } from './shared/errors.js';
export type { AsyncLockDriver } from './drivers/types.js';
