import { chmodSync, lstatSync, mkdtempSync, renameSync, rmSync, unlinkSync, type Stats } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { InstanceError, type InstanceReply } from '../shared/errors.js';
import { describe } from '../shared/describe.js';
import { privateDirPrefix } from './endpoint.js';
import { firstLine, frame, isExitCode, MAX_FRAME_BYTES, parseRequest, type SecondInstance } from './protocol.js';

/**
 * The running instance's side: a socket (or Windows pipe) that accepts
 * second instances' messages, runs the handler for each, and replies. Each
 * connection is on its own: a client that is slow, silent, sends garbage or
 * too much is refused or dropped after its deadline without touching the others.
 */

/**
 * What `onSecondInstance` may return: a reply, or nothing (exit code 0, no
 * message), directly or through a promise.
 *
 * @example
 * ```ts
 * const handler: SecondInstanceHandler = ({ argv }) => ({ exitCode: 0, message: `opened ${argv.length - 2} files` });
 * ```
 */
export type SecondInstanceHandler = (message: SecondInstance) => InstanceReplyLike | Promise<InstanceReplyLike>;

/**
 * A handler's answer: `exitCode` (default 0) and `message` (default none),
 * or nothing at all.
 *
 * @example
 * ```ts
 * const answer: InstanceReplyLike = { message: 'reloaded' };
 * ```
 */
export type InstanceReplyLike = { exitCode?: number; message?: string } | undefined | void;

/** How long a client has to send its whole message, and to read the reply once it is written. */
export const CLIENT_DEADLINE_MS = 5_000;

/** A listening endpoint. */
export interface InstanceServer {
  readonly path: string;
  /** Stops listening and removes the socket if it is still this one (synchronous: runs at exit). */
  close(): void;
}

/**
 * Listens at `path` for second instances, synchronously: when it returns, a
 * connection to `path` reaches this process. On Unix the socket is bound in
 * a private 0700 directory, set to mode 0600, checked (a socket, that mode,
 * this user's), then renamed onto `path`, replacing any stale socket a killed
 * holder left: only the lock holder calls this, so only it replaces the file.
 */
export function listen(path: string, handler: SecondInstanceHandler): InstanceServer {
  const server = createServer({ pauseOnConnect: false }, (socket) => serve(socket, handler));
  server.on('error', () => {}); // a failed bind is seen synchronously below; nothing else is fatal to the instance
  if (process.platform === 'win32') {
    server.listen(path);
    server.unref();
    return { path, close: () => server.close() };
  }
  const owned = bindInPlace(server, path);
  server.unref();
  return {
    path,
    close: () => {
      server.close();
      removeIfOurs(path, owned);
    },
  };
}

function bindInPlace(server: Server, path: string): Stats {
  const privateDir = mkdtempSync(privateDirPrefix(path)); // mode 0700: only this user can reach what is inside
  const bound = join(privateDir, 's');
  try {
    server.listen(bound); // bind(2) and listen(2) happen now; a failure is reported later, so it shows as a missing socket
    setOwnerOnly(bound);
    checkSocket(bound, server);
    moveIntoPlace(bound, path, server);
    return lstatSync(path);
  } finally {
    rmSync(privateDir, { recursive: true, force: true });
  }
}

function setOwnerOnly(bound: string): void {
  try {
    chmodSync(bound, 0o600);
  } catch {
    // Checked next.
  }
}

/** Sets the socket's mode to 0600 and checks it took: a socket, that mode, owned by this user. */
function checkSocket(bound: string, server: Server): void {
  let stat: Stats;
  try {
    stat = lstatSync(bound);
  } catch (error) {
    server.close();
    throw new InstanceError('ERR_INSTANCE_IO', bound, `Cannot listen for second instances at ${bound}.`, error);
  }
  const uid = process.getuid?.();
  if (!stat.isSocket() || (stat.mode & 0o777) !== 0o600 || (uid !== undefined && stat.uid !== uid)) {
    server.close();
    throw new InstanceError(
      'ERR_INSTANCE_PERMISSION',
      bound,
      `The single-instance socket ${bound} is not a socket of mode 0600 owned by this user (mode ${(stat.mode & 0o777).toString(8)}, uid ${stat.uid}).`
    );
  }
}

function moveIntoPlace(bound: string, path: string, server: Server): void {
  try {
    renameSync(bound, path);
  } catch (error) {
    server.close();
    const code = (error as NodeJS.ErrnoException).code;
    const owner = ownerOf(path);
    throw new InstanceError(
      code === 'EPERM' || code === 'EACCES' ? 'ERR_INSTANCE_PERMISSION' : 'ERR_INSTANCE_IO',
      path,
      `Cannot put the single-instance socket at ${path} (${code ?? String(error)})` +
        (owner === undefined
          ? '.'
          : `: it belongs to uid ${owner}, left there by a process of that user that was killed, or still in use by it. ` +
            'Remove it as that user (or root) once no instance of that user runs, or give this app a directory of its own (`dir`).'),
      error
    );
  }
}

function ownerOf(path: string): number | undefined {
  try {
    return lstatSync(path).uid;
  } catch {
    return undefined;
  }
}

/** Unlinks `path` if it is still the socket this process put there (a later holder may have replaced it). */
function removeIfOurs(path: string, owned: Stats): void {
  try {
    const now = lstatSync(path);
    if (now.ino === owned.ino && now.dev === owned.dev) unlinkSync(path);
  } catch {
    // Gone already, or replaced: not ours to remove.
  }
}

/** One client: read its line within the deadline, accept it, run the handler, reply. */
function serve(socket: Socket, handler: SecondInstanceHandler): void {
  socket.unref(); // a client, even a silent one, never keeps the running instance alive
  socket.on('error', () => socket.destroy());
  socket.setTimeout(CLIENT_DEADLINE_MS, () => socket.destroy());
  let buffered: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    let line: ReturnType<typeof firstLine>;
    try {
      line = firstLine(buffered);
    } catch {
      refuse(socket, `the message is larger than ${MAX_FRAME_BYTES} bytes`);
      return;
    }
    if (line === undefined) return;
    socket.off('data', onData);
    const request = parseRequest(line.line);
    if (typeof request === 'string') refuse(socket, `malformed message: ${request}`);
    else accept(socket, request, handler);
  };
  socket.on('data', onData);
}

function refuse(socket: Socket, why: string): void {
  socket.pause();
  socket.end(frame({ refused: why }));
}

/** Says "accepted" first, and runs the handler only once that is written: a client that saw it knows not to deliver again. */
function accept(socket: Socket, request: SecondInstance, handler: SecondInstanceHandler): void {
  socket.setTimeout(0); // the handler takes what it takes; the client bounds its own wait
  socket.write(frame({ accepted: true }), (error) => {
    if (error) return;
    void replyOf(handler, request).then((reply) => {
      if (socket.destroyed) return;
      socket.setTimeout(CLIENT_DEADLINE_MS, () => socket.destroy());
      socket.end(frame(reply));
    });
  });
}

/** The handler's answer as a reply: a throw or a bad answer is a failed reply (exit code 1, the message saying why). */
async function replyOf(handler: SecondInstanceHandler, request: SecondInstance): Promise<InstanceReply> {
  let answer: unknown;
  try {
    answer = await handler(request);
  } catch (error) {
    return failed(`onSecondInstance failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  const reply = asReply(answer);
  if (reply === undefined) return failed(`onSecondInstance returned ${describe(answer)}, not { exitCode?: 0..255, message?: string }`);
  return frame(reply).length > MAX_FRAME_BYTES ? failed(`onSecondInstance's reply is larger than ${MAX_FRAME_BYTES} bytes`) : reply;
}

function asReply(answer: unknown): InstanceReply | undefined {
  if (answer === undefined || answer === null) return { exitCode: 0 };
  if (typeof answer !== 'object') return undefined;
  const { exitCode = 0, message } = answer as { exitCode?: unknown; message?: unknown };
  if (!isExitCode(exitCode) || (message !== undefined && typeof message !== 'string')) return undefined;
  return message === undefined ? { exitCode } : { exitCode, message };
}

function failed(message: string): InstanceReply {
  return { exitCode: 1, message, failed: true };
}
