import { closeSync, readSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { constants } from 'node:os';
import { extname, join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { InstanceError, type InstanceErrorCode } from '../shared/errors.js';
import { loadUnixSockets, type UnixSockets } from '../native/libc.js';
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
 * with `fs.readSync`/`writeSync`, about a millisecond on top of the handler;
 * on Windows (a named pipe), or where the native binding does not load,
 * through a worker thread (tens of milliseconds to start).
 */
export function deliverSync(path: string, request: Buffer, timeoutMs: number): Delivery {
  const absent = checkPeer(path);
  if (absent !== undefined) return absent;
  // Deno's node:fs cannot read, write or close a descriptor it did not open (EBADF): there the worker talks.
  const sockets = process.platform === 'win32' || 'Deno' in globalThis ? undefined : unixSocketsIfLoadable();
  if (sockets === undefined) return deliverThroughWorker(path, request, timeoutMs);
  const deadline = Date.now() + timeoutMs;
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

function unixSocketsIfLoadable(): UnixSockets | undefined {
  try {
    return loadUnixSockets();
  } catch {
    return undefined;
  }
}

/**
 * Loads sync-worker.js (or .ts under a loader that handles it in workers),
 * and wakes the blocked thread with the error when it cannot: otherwise a
 * worker that fails to load would leave it blocked until the deadline.
 */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
try {
  require(workerData.file);
} catch (error) {
  workerData.port.postMessage({ error: { message: 'Cannot start the delivery thread: ' + (error && error.message) } });
  Atomics.store(workerData.done, 0, 1);
  Atomics.notify(workerData.done, 0);
}`;

/** How long a worker may take to start, on top of the delivery's own timeout. */
const WORKER_START_MS = 10_000;

/**
 * {@link deliver} on a worker thread while this one blocks in `Atomics.wait`;
 * the outcome comes back through `receiveMessageOnPort`, which reads a
 * message port synchronously.
 */
export function deliverThroughWorker(path: string, request: Buffer, timeoutMs: number): Delivery {
  const done = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const file = join(__dirname, `sync-worker${extname(__filename)}`);
  const worker = new Worker(BOOTSTRAP, {
    eval: true,
    workerData: { file, path, request: new Uint8Array(request), timeoutMs, port: port2, done },
    transferList: [port2],
    stdout: false,
    stderr: false,
  });
  try {
    Atomics.wait(done, 0, 0, timeoutMs + WORKER_START_MS);
    const received = receiveMessageOnPort(port1)?.message as
      { delivery?: Delivery; error?: { code?: string; message: string } } | undefined;
    if (received?.delivery !== undefined) return received.delivery;
    if (received?.error === undefined) throw new Conversation(path).timedOut(timeoutMs);
    const { code, message } = received.error;
    throw new InstanceError(isInstanceCode(code) ? code : 'ERR_INSTANCE_IO', path, message);
  } finally {
    port1.close();
    void worker.terminate();
  }
}

const INSTANCE_CODES: ReadonlySet<string> = new Set<InstanceErrorCode>([
  'ERR_NO_INSTANCE',
  'ERR_INSTANCE_TIMEOUT',
  'ERR_INSTANCE_PERMISSION',
  'ERR_INSTANCE_PROTOCOL',
  'ERR_INSTANCE_IO',
]);

function isInstanceCode(code: string | undefined): code is InstanceErrorCode {
  return code !== undefined && INSTANCE_CODES.has(code);
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
