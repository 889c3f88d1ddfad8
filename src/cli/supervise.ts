import { spawn } from 'node:child_process';

/** How the command ended. */
export type ChildEnd =
  | { kind: 'exited'; code: number }
  | { kind: 'signaled'; signal: NodeJS.Signals }
  /** It never started: not found (ENOENT), not executable (EACCES)... */
  | { kind: 'failed'; error: NodeJS.ErrnoException };

/** A started (or failed) command. */
export interface Child {
  /** Its pid, known at once; undefined when it could not start. */
  readonly pid: number | undefined;
  /** Settles once it has ended (or failed to start); never rejects. */
  readonly ended: Promise<ChildEnd>;
}

/**
 * Starts `argv` with our stdin, stdout and stderr, in our process group (so
 * it keeps the terminal: interactive commands and job control work).
 * `lockDescriptor`, when the lock lives on one (posix), becomes the
 * command's descriptor 3, as flock(1) hands its command the lock (the guard
 * kills the command if the tool dies; the descriptor covers the moment in
 * between, and whatever the command left running with it open).
 */
export function startChild(argv: readonly [string, ...string[]], lockDescriptor?: number): Child {
  const [file, ...args] = argv;
  const child = spawn(file, args, { stdio: lockDescriptor === undefined ? 'inherit' : ['inherit', 'inherit', 'inherit', lockDescriptor] });
  const ended = new Promise<ChildEnd>((resolve) => {
    // Only a failed exec() leaves the pid unset (we never use child.kill(), the other source of 'error').
    child.on('error', (error) => {
      if (child.pid === undefined) resolve({ kind: 'failed', error });
    });
    child.once('exit', (code, signal) => resolve(signal !== null ? { kind: 'signaled', signal } : { kind: 'exited', code: code ?? 0 }));
  });
  return { pid: child.pid, ended };
}
