export { Exclusive } from './api/exclusive.js';
export { EXCLUSIVE_METADATA } from './api/decorator.js';
export type {
  ExclusiveApi,
  ExclusiveDecorator,
  ForeverOptions,
  HolderOptions,
  LockHolder,
  SkipOptions,
  SkippingDecorator,
  SyncOptions,
} from './api/types.js';
export type { NotifyOptions } from './api/single-instance.js';
export type { SecondInstance } from './instance/protocol.js';
export type { InstanceReplyLike, SecondInstanceHandler } from './instance/server.js';
export { exclusive, type AsyncVersion, type ExclusiveFunction, type MaybeSkipped } from './api/wrap.js';
export { ExclusiveLock } from './core/handle.js';
export { CHANNELS, type AcquireContext, type AcquireOutcome, type LostMessage, type ReleaseMessage } from './core/trace.js';
export type { ExclusiveOptions } from './api/options.js';
export { windows, type WindowsDriverOptions, type WindowsScope } from './drivers/windows/index.js';
export {
  CannotAcquireLock,
  ExclusiveProcessError,
  InstanceError,
  InvalidArgumentError,
  LockDriverError,
  LockFileError,
  LockLostError,
  LockModeError,
  NotHoldingError,
  type ArgumentErrorCode,
  type LockModeErrorCode,
  type ConflictReason,
  type InstanceErrorCode,
  type InstanceReply,
  type LockFileErrorCode,
} from './shared/errors.js';
export type {
  AsyncLockDriver,
  DriverLock,
  DriverModes,
  DriverName,
  HolderRecord,
  LockDriver,
  LockMode,
  SyncLockDriver,
} from './drivers/types.js';
