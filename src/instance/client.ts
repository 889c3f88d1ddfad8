import { closeSync, readSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { constants } from 'node:os';
import { InstanceError } from '../shared/errors.js';
import { loadUnixSockets } from '../native/libc.js';
import { checkPeer, connectFailure, Conversation, type Delivery } from './conversation.js';

/** Delivers `request` (a frame) to the instance at `path` and waits up to `timeoutMs` for its reply, without blocking. */
export function deliver(path: string, request: Buffer, timeoutMs: number): Promise<Delivery> {
  return new Promise((resolve, reject) => {
    let absent: Delivery | undefined;
    try {
      absent = checkPeer(path);
    } catch (error) {
      reject(error);
      return;
    }
    if (absent !== undefined) {
      resolve(absent);
      return;
    }
    const conversation = new Conversation(path);
    const socket = connect(path);
    const timer = setTimeout(() => finish(conversation.timedOut(timeoutMs)), timeoutMs);
    const finish = (outcome: Delivery | Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      try {
        const outcome = conversation.feed(chunk);
        if (outcome !== undefined) finish(outcome);
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (conversation.accepted) return finish(conversation.ended());
      try {
        finish(connectFailure(path, error));
      } catch (typed) {
        finish(typed as Error);
      }
    });
    socket.on('close', () => finish(conversation.ended()));
  });
}

/**
 * {@link deliver}, blocking the thread (for `forever()`, which must not
 * return before the reply): a Unix socket through libc, read and written
 * with `fs.readSync`/`writeSync`. About a millisecond on top of the handler.
 */
export function deliverSync(path: string, request: Buffer, timeoutMs: number): Delivery {
  const absent = checkPeer(path);
  if (absent !== undefined) return absent;
  if (process.platform === 'win32') {
    throw new InstanceError(
      'ERR_INSTANCE_IO',
      path,
      'A second instance cannot deliver synchronously on Windows yet: use Exclusive.notify().'
    );
  }
  const deadline = Date.now() + timeoutMs;
  const sockets = loadUnixSockets();
  const connected = sockets.connect(path, timeoutMs);
  const conversation = new Conversation(path);
  if ('errno' in connected) {
    const code = errnoName(connected.errno);
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') throw conversation.timedOut(timeoutMs); // its backlog stayed full
    return connectFailure(path, { code });
  }
  try {
    if (!writeAll(connected.fd, request)) return conversation.ended();
    return readReply(connected.fd, conversation, deadline, timeoutMs, sockets.setReadTimeout);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN') throw conversation.timedOut(timeoutMs);
    throw error;
  } finally {
    closeSync(connected.fd);
  }
}

/** Writes all of `bytes`; false when the instance hung up first (it took nothing). */
function writeAll(fd: number, bytes: Buffer): boolean {
  for (let at = 0; at < bytes.length;) {
    try {
      at += writeSync(fd, bytes, at);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPIPE' || code === 'ECONNRESET') return false;
      throw error;
    }
  }
  return true;
}

function readReply(
  fd: number,
  conversation: Conversation,
  deadline: number,
  timeoutMs: number,
  setReadTimeout: (fd: number, ms: number) => void
): Delivery {
  const buffer = Buffer.alloc(64 * 1024);
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw conversation.timedOut(timeoutMs);
    setReadTimeout(fd, left);
    let read: number;
    try {
      read = readSync(fd, buffer);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ECONNRESET') return conversation.ended();
      throw error;
    }
    if (read === 0) return conversation.ended();
    const outcome = conversation.feed(Buffer.from(buffer.subarray(0, read)));
    if (outcome !== undefined) return outcome;
  }
}

/** `ENOENT` for 2 (this platform's numbering). */
function errnoName(errno: number): string {
  const entry = Object.entries(constants.errno).find(([, value]) => value === errno);
  return entry?.[0] ?? `errno ${errno}`;
}
