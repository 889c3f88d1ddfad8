import { LockDriverError } from '../errors.js';

/**
 * The libc calls of the POSIX driver, through ffi-rs. Loaded lazily so that
 * a platform without the native binding can still use the portable driver.
 */

export interface ErrnoResult {
  value: number;
  errnoCode: number;
  errnoMessage: string;
}

export interface Native {
  flock(fd: number, operation: number): ErrnoResult;
}

let native: Native | undefined;

/** The native calls, or a LockDriverError (ERR_DRIVER_UNAVAILABLE) saying why they cannot load. */
export function loadNative(): Native {
  if (native !== undefined) return native;
  try {
    const ffi = require('ffi-rs') as typeof import('ffi-rs');
    ffi.open({ library: 'libc', path: '' }); // '' is the main program, which links libc
    const { flock } = ffi.define({
      flock: { library: 'libc', retType: ffi.DataType.I32, paramsType: [ffi.DataType.I32, ffi.DataType.I32], errno: true },
    });
    native = { flock: (fd, operation) => flock([fd, operation]) as ErrnoResult };
    return native;
  } catch (error) {
    throw new LockDriverError('ERR_DRIVER_UNAVAILABLE',
      `The native flock binding (ffi-rs) cannot load on ${process.platform}-${process.arch}: ${(error as Error).message}. Use driver: 'portable'.`, error);
  }
}
