import { lstatSync } from 'node:fs';
import { InstanceError, type InstanceReply } from '../shared/errors.js';
import { firstLine, parseServerLine } from './protocol.js';

/**
 * The second instance's side of one exchange, shared by the asynchronous
 * client (`notify()`) and the synchronous one (`forever()`): they only move
 * bytes; this reads the lines and decides what they mean.
 */

/** The outcome: the reply, or nobody took the message (no listener, or it ended before accepting it): safe to try again. */
export type Delivery = { readonly kind: 'replied'; readonly reply: InstanceReply } | { readonly kind: 'absent'; readonly why: string };

/** Reads the running instance's lines as they come. */
export class Conversation {
  readonly #path: string;
  #buffered: Buffer = Buffer.alloc(0);
  #accepted = false;

  constructor(path: string) {
    this.#path = path;
  }

  /** Whether the instance said it took the message (then it must not be sent again, whatever happens). */
  get accepted(): boolean {
    return this.#accepted;
  }

  /** Takes bytes read; returns the outcome once a reply came. */
  feed(chunk: Buffer): Delivery | undefined {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    for (;;) {
      let next: ReturnType<typeof firstLine>;
      try {
        next = firstLine(this.#buffered);
      } catch (error) {
        throw this.#protocolError(`its reply is ${(error as Error).message}`);
      }
      if (next === undefined) return undefined;
      this.#buffered = next.rest;
      const line = parseServerLine(next.line);
      if (line === undefined) throw this.#protocolError('it answered something that is not a reply');
      if (line.kind === 'refused') throw this.#protocolError(`it refused the message: ${line.why}`);
      if (line.kind === 'reply') return { kind: 'replied', reply: line.reply };
      this.#accepted = true;
    }
  }

  /** The outcome when the connection ended before a reply. */
  ended(): Delivery {
    if (!this.#accepted) return { kind: 'absent', why: 'the running instance closed the connection before taking the message' };
    return { kind: 'replied', reply: { exitCode: 1, message: 'The running instance ended before it replied.', failed: true } };
  }

  /** The error for a reply that did not come in time. */
  timedOut(timeoutMs: number): InstanceError {
    const what = this.#accepted ? 'did not reply' : 'did not take the message';
    return new InstanceError('ERR_INSTANCE_TIMEOUT', this.#path, `The running instance (${this.#path}) ${what} within ${timeoutMs} ms.`);
  }

  #protocolError(why: string): InstanceError {
    return new InstanceError('ERR_INSTANCE_PROTOCOL', this.#path, `Cannot deliver to the running instance (${this.#path}): ${why}.`);
  }
}

/** What a failed connect (or first write) means: nobody there (retry), or a typed error. */
export function connectFailure(path: string, error: NodeJS.ErrnoException | { code: string }): Delivery {
  const code = error.code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EPIPE' || code === 'ECONNRESET') {
    return { kind: 'absent', why: `nobody listens at ${path} (${code})` };
  }
  if (code === 'EACCES' || code === 'EPERM') throw permissionError(path, `connecting is not allowed (${code})`);
  throw new InstanceError(
    'ERR_INSTANCE_IO',
    path,
    `Cannot connect to the running instance at ${path} (${code ?? 'unknown error'}).`,
    error
  );
}

/**
 * Checks the socket before anything is sent to it (Unix): it must be a
 * socket owned by this user or by root. In a shared lock directory another
 * user could have put one there first, to read what is sent; the sticky bit
 * keeps others from replacing ours, so this check cannot be raced.
 * Undefined when there is none (nobody listens).
 */
export function checkPeer(path: string): Delivery | undefined {
  if (process.platform === 'win32') return undefined;
  let stat;
  try {
    stat = lstatSync(path);
  } catch (error) {
    return connectFailure(path, error as NodeJS.ErrnoException);
  }
  const uid = process.geteuid?.();
  if (!stat.isSocket()) throw permissionError(path, 'it is not a socket');
  // Its own user's, or root's: root too delivers only to root's (another user may have taken the name first).
  if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) throw permissionError(path, `it belongs to uid ${stat.uid}`);
  return undefined;
}

function permissionError(path: string, why: string): InstanceError {
  return new InstanceError(
    'ERR_INSTANCE_PERMISSION',
    path,
    `Cannot deliver to the running instance at ${path}: ${why}. Only its own user (and root) may talk to it.`
  );
}
