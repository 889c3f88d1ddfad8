import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { LockFileError } from '../shared/errors.js';
import { MAX_SOCKET_PATH_BYTES } from '../native/libc.js';
import { DIR_OPTION, LOCK_FILE_PREFIX, LOCK_FILE_SUFFIX, lockDirectory, lockFileName } from '../drivers/file/path.js';

/**
 * Where the running instance of a lock listens. On Linux and macOS: a Unix
 * socket beside the lock file, named as it is with `.sock` for `.lock`
 * (`/run/lock/exclusive-process.my-app.sock`), so it never leaves the lock
 * directory whatever the name holds. On Windows: a named pipe whose name is
 * a hash of the driver and the lock's resource.
 */

/** What ends a socket's name, in place of the lock file's `.lock`. */
export const SOCKET_SUFFIX = '.sock';

/** Which lock the endpoint belongs to: its name, where its driver locates it, and the `dir` option. */
export interface EndpointOf {
  readonly name: string;
  readonly kind: string;
  readonly resource: string;
  readonly dir: string | undefined;
}

/** The socket path or pipe name of the instance holding `lock`. */
export function endpointPath(lock: EndpointOf): string {
  if (process.platform === 'win32') return `\\\\.\\pipe\\${LOCK_FILE_PREFIX}${hash(`${lock.kind}\n${lock.resource}`)}`;
  const directory = lock.kind === 'posix' || lock.kind === 'portable' ? dirname(lock.resource) : lockDirectory(lock.dir);
  return socketPath(directory, lock.name);
}

/**
 * `<dir>/exclusive-process.<encoded name>.sock`, or, when that is longer
 * than a socket address holds (107 bytes on Linux, 103 on macOS), the
 * hashed short name `<dir>/exclusive-process.~<32 hex>.sock`. A directory
 * too long for even that gets ERR_LOCK_DIR: the socket is never put
 * elsewhere, where another user could choose the path.
 */
export function socketPath(directory: string, name: string): string {
  const readable = join(directory, lockFileName(name).slice(0, -LOCK_FILE_SUFFIX.length) + SOCKET_SUFFIX);
  if (Buffer.byteLength(readable) <= MAX_SOCKET_PATH_BYTES) return readable;
  const short = join(directory, `${LOCK_FILE_PREFIX}~${hash(name)}${SOCKET_SUFFIX}`);
  if (Buffer.byteLength(short) <= MAX_SOCKET_PATH_BYTES) return short;
  throw new LockFileError(
    'ERR_LOCK_DIR',
    directory,
    `The lock directory ${directory} is too long for a single-instance socket (${Buffer.byteLength(short)} bytes with the socket's name; ` +
      `a socket address holds ${MAX_SOCKET_PATH_BYTES}): choose a shorter one with ${DIR_OPTION} or EXCLUSIVE_PROCESS_DIR.`
  );
}

/**
 * The prefix of the private directory (mode 0700, made by mkdtemp beside the
 * socket) in which a socket is bound before it is moved into place: no one
 * else can connect to it there while its mode is being set and checked.
 * Always shorter than the socket's own path, so it fits wherever that does.
 */
export function privateDirPrefix(path: string): string {
  return join(dirname(path), '.ep-');
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
