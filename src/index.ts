export { Exclusive, EXCLUSIVE_METADATA, type ExclusiveApi, type ExclusiveDecorator, type HolderOptions, type LockHolder, type SyncOptions } from './exclusive.js';
export { exclusive, type AsyncVersion, type ExclusiveFunction } from './wrap.js';
export { ExclusiveLock } from './lock.js';
export type { ExclusiveOptions } from './options.js';
export { windows, type WindowsDriverOptions, type WindowsScope } from './drivers/windows.js';
export {
  CannotAcquireLock,
  InvalidArgumentError,
  LockDriverError,
  LockFileError,
  LockLostError,
  NotHoldingError,
  type ArgumentErrorCode,
  type ConflictReason,
  type LockFileErrorCode,
} from './errors.js';
export type { AsyncLockDriver, DriverLock, DriverName, HolderRecord, LockDriver, SyncLockDriver } from './drivers/types.js';
