export { Exclusive, EXCLUSIVE_METADATA, type ExclusiveApi, type ExclusiveDecorator, type HolderOptions, type LockHolder } from './exclusive.js';
export { exclusive, type AsyncVersion } from './wrap.js';
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
  type LockFileErrorCode,
} from './errors.js';
export type { DriverLock, DriverName, HolderRecord, LockDriver } from './drivers/types.js';
