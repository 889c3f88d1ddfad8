import { LockDriverError } from '../errors.js';
import type { LockDriver } from './types.js';

// Placeholder while the windows driver is written (issue 3).
export function createWindowsDriver(): LockDriver {
  throw new LockDriverError('ERR_DRIVER_UNAVAILABLE', 'The windows driver is not built yet.');
}
