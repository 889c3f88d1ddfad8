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

/**
 * Blocking Unix-domain stream sockets, for the one place that must talk to
 * another process synchronously: a second instance's `Exclusive.forever()`
 * (it cannot return before the running instance replied). Reads and writes
 * go through `fs.readSync`/`writeSync` on the descriptor; only socket(2),
 * connect(2) and setsockopt(2) need libc.
 */
export interface UnixSockets {
  /** A blocking stream socket connected to `path` (its sends bounded by `timeoutMs`), or the errno of the failure. */
  connect: (path: string, timeoutMs: number) => { fd: number } | { errno: number };
  /** Bounds each later read of `fd` to `timeoutMs`: a read that waits longer fails with EAGAIN. */
  setReadTimeout: (fd: number, timeoutMs: number) => void;
}

const MAC = process.platform === 'darwin';
/** Per platform: SOL_SOCKET, SO_RCVTIMEO, SO_SNDTIMEO, the sun_path size, SOCK_CLOEXEC (none on macOS). */
const SOCKET_CONSTANTS = MAC
  ? { level: 0xffff, receiveTimeout: 0x1006, sendTimeout: 0x1005, pathSize: 104, cloexec: 0 }
  : { level: 1, receiveTimeout: 20, sendTimeout: 21, pathSize: 108, cloexec: 0o2000000 };

/** The longest socket path connect(2) and bind(2) take here, in bytes, without its NUL. */
export const MAX_SOCKET_PATH_BYTES = SOCKET_CONSTANTS.pathSize - 1;

let sockets: UnixSockets | undefined;

/** The socket calls (Linux and macOS), or a LockDriverError (ERR_DRIVER_UNAVAILABLE) when ffi-rs cannot load. */
export function loadUnixSockets(): UnixSockets {
  if (sockets !== undefined) return sockets;
  loadNative(); // opens libc, or says why it cannot
  const ffi = requireFfi();
  const { I32, U8Array } = ffi.DataType;
  const call = (funcName: string, paramsType: number[], paramsValue: unknown[]): { value: number; errnoCode: number } => {
    const result: unknown = ffi.load({
      library: 'libc',
      funcName,
      retType: I32,
      paramsType,
      paramsValue,
      errno: true,
      freeResultMemory: false,
    });
    return result as { value: number; errnoCode: number };
  };
  const setTimeout = (fd: number, option: number, ms: number): void => {
    const timeval = Buffer.alloc(16); // { time_t tv_sec; suseconds_t tv_usec } on 64-bit Linux and macOS (little-endian)
    timeval.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
    timeval.writeInt32LE(Math.max(1, (ms % 1000) * 1000), 8); // 0 would mean "no limit"
    call('setsockopt', [I32, I32, I32, U8Array, I32], [fd, SOCKET_CONSTANTS.level, option, timeval, timeval.length]);
  };
  sockets = {
    connect: (path, timeoutMs) => {
      const socket = call('socket', [I32, I32, I32], [1 /* AF_UNIX */, 1 /* SOCK_STREAM */ | SOCKET_CONSTANTS.cloexec, 0]);
      if (socket.value < 0) return { errno: socket.errnoCode };
      const fd = socket.value;
      setTimeout(fd, SOCKET_CONSTANTS.sendTimeout, timeoutMs); // also bounds connect(2) to a full backlog
      const address = socketAddress(path);
      const connected = call('connect', [I32, U8Array, I32], [fd, address, address.length]);
      if (connected.value === 0) return { fd };
      call('close', [I32], [fd]);
      return { errno: connected.errnoCode };
    },
    setReadTimeout: (fd, timeoutMs) => setTimeout(fd, SOCKET_CONSTANTS.receiveTimeout, timeoutMs),
  };
  return sockets;
}

/** A `struct sockaddr_un` for `path` (macOS starts it with a length byte). */
function socketAddress(path: string): Buffer {
  const bytes = Buffer.from(path, 'utf8');
  if (bytes.length > MAX_SOCKET_PATH_BYTES) throw new RangeError(`socket path too long: ${path}`);
  const address = Buffer.alloc(2 + SOCKET_CONSTANTS.pathSize);
  if (MAC) {
    address.writeUInt8(address.length, 0);
    address.writeUInt8(1, 1);
  } else {
    address.writeUInt16LE(1, 0); // AF_UNIX
  }
  bytes.copy(address, 2);
  return address;
}
