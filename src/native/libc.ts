import { LockDriverError } from '../shared/errors.js';
import { requireFfi } from './ffi.js';

/**
 * The libc calls of the POSIX driver, through ffi-rs. Loaded lazily so that
 * a platform without the native binding can still use the portable driver.
 */

export interface Native {
  /** flock(2): 0 on success, else the errno. A plain function (no `this`): the driver keeps it detached. */
  flock: (fd: number, operation: number) => number;
}

let native: Native | undefined;

/** The native calls, or a LockDriverError (ERR_DRIVER_UNAVAILABLE) saying why they cannot load. */
export function loadNative(): Native {
  if (native !== undefined) return native;
  let ffi: typeof import('ffi-rs');
  try {
    ffi = requireFfi();
    ffi.open({ library: 'libc', path: '' }); // '' is the main program, which links libc
  } catch (error) {
    throw new LockDriverError(
      'ERR_DRIVER_UNAVAILABLE',
      `The native flock binding (ffi-rs) cannot load on ${process.platform}-${process.arch}: ${(error as Error).message.replace(/\.$/, '')}. ` +
        "Choose the portable driver explicitly: driver: 'portable' in code, --driver portable for the exclusive command " +
        '(on Linux it excludes processes using the posix driver on the same lock; elsewhere every process using that lock must choose portable).',
      error
    );
  }
  // One reused call description: ffi-rs's define() rebuilds it on every call,
  // which doubles the cost. Errno is asked for only after a failure (it costs
  // more); the failure's cause persists, and if the lock was freed meanwhile
  // the second call simply succeeds.
  const call = {
    library: 'libc',
    funcName: 'flock',
    retType: ffi.DataType.I32,
    paramsType: [ffi.DataType.I32, ffi.DataType.I32],
    paramsValue: [0, 0],
    freeResultMemory: false,
  };
  const callWithErrno = { ...call, errno: true as const };
  native = {
    flock: (fd, operation) => {
      call.paramsValue = [fd, operation];
      if (ffi.load(call) === 0) return 0;
      callWithErrno.paramsValue = [fd, operation];
      const result = ffi.load(callWithErrno);
      return result.value === 0 ? 0 : result.errnoCode;
    },
  };
  return native;
}
