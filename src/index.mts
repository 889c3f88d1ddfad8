// ESM entry: re-exports the CommonJS build, so `import` and `require` share
// one module instance (one in-process lock registry), never two copies.
import api from './index.js';

export const {
  Exclusive,
  EXCLUSIVE_METADATA,
  exclusive,
  ExclusiveLock,
  CannotAcquireLock,
  InvalidArgumentError,
  LockDriverError,
  LockFileError,
  LockLostError,
  NotHoldingError,
  windows,
} = api;
export type * from './index.js';
