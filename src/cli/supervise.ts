import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

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
  /** Lets a gated command run (see startChild); a no-op for an ungated one. */
  open(): void;
  /** Settles once it has ended (or failed to start); never rejects. */
  readonly ended: Promise<ChildEnd>;
}

/**
 * The gate a guarded command starts behind: a shell that waits for the tool's
 * go-ahead on descriptor 4, then becomes the command (same pid). The tool
 * says go only once the guard knows that pid, so a tool killed in between
 * (kill -9 while spawn() returns) leaves nothing running: the gate reads
 * end-of-file and exits instead.
 */
const GATE = 'IFS= read -r go <&4 || exit 125; exec 4<&-; exec "$0" "$@"';

/**
 * Starts `argv` with our stdin, stdout and stderr, in our process group (so
 * it keeps the terminal: interactive commands and job control work).
 * `lockDescriptor`, when the lock lives on one (posix), becomes the
 * command's descriptor 3, as flock(1) hands its command the lock (the guard
 * kills the command if the tool dies; the descriptor covers whatever the
 * command left running with it open). `gated`: it waits for open() before
 * running (only with /bin/sh, which the guard needs too).
 */
export function startChild(argv: readonly [string, ...string[]], lockDescriptor: number | undefined, gated: boolean): Child {
  const [file, ...args] = argv;
  const cannot = gated ? whyNotRunnable(file) : undefined;
  if (cannot !== undefined) return { pid: undefined, open: () => {}, ended: Promise.resolve({ kind: 'failed', error: cannot }) };
  const descriptor = lockDescriptor ?? 'ignore';
  const child = gated
    ? spawn('/bin/sh', ['-c', GATE, file, ...args], { stdio: ['inherit', 'inherit', 'inherit', descriptor, 'pipe'] })
    : spawn(file, args, { stdio: lockDescriptor === undefined ? 'inherit' : ['inherit', 'inherit', 'inherit', lockDescriptor] });
  return { pid: child.pid, open: gated ? () => openGate(child) : () => {}, ended: endOf(child) };
}

function openGate(child: ChildProcess): void {
  const gate = child.stdio[4] as NodeJS.WritableStream | null;
  gate?.on('error', () => {}); // the command may be gone already
  gate?.end('go\n');
}

function endOf(child: ChildProcess): Promise<ChildEnd> {
  return new Promise<ChildEnd>((resolve) => {
    // Only a failed exec() leaves the pid unset (we never use child.kill(), the other source of 'error').
    child.on('error', (error) => {
      if (child.pid === undefined) resolve({ kind: 'failed', error });
    });
    child.once('exit', (code, signal) => resolve(signal !== null ? { kind: 'signaled', signal } : { kind: 'exited', code: code ?? 0 }));
  });
}

/**
 * Why exec would refuse `file` (ENOENT: nowhere to be found; EACCES: found,
 * but not an executable file), searched as execvp() does; undefined when it
 * can run. Behind the gate the shell execs it, so the tool finds out first to
 * say so in its own words, as it does when spawn() fails.
 */
function whyNotRunnable(file: string): NodeJS.ErrnoException | undefined {
  const places = file.includes('/')
    ? [file]
    : (process.env.PATH ?? '/usr/bin:/bin').split(':').map((dir) => join(dir === '' ? '.' : dir, file));
  let denied = false;
  for (const place of places) {
    try {
      if (statSync(place).isFile()) {
        accessSync(place, constants.X_OK);
        return undefined;
      }
      denied = true; // a directory
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EACCES') denied = true;
    }
  }
  const code = denied ? 'EACCES' : 'ENOENT';
  return Object.assign(new Error(`${code}: ${file}`), { code, path: file });
}
