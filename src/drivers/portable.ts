import { LockDriverError } from '../errors.js';
import type { LockDriver } from './types.js';

// Placeholder while the portable driver is written (issue 3).
export function createPortableDriver(): LockDriver {
  throw new LockDriverError('ERR_DRIVER_UNAVAILABLE', 'The portable driver is not built yet.');
}
