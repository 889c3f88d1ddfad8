import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { FORWARDED_SIGNALS, type ForwardedSignal } from './signals.js';

/**
 * The guard: a tiny `/bin/sh` started next to the command, in the tool's
 * process group. It kills the command and its descendants when the tool dies
 * however it died (its stdin pipe reads end-of-file), and tells the tool
 * whether a signal the tool got was sent to the whole group (then the command
 * got it too and must not get it twice). See docs/internals/cli-guard.md.
 */

/** A running guard (see the file comment). */
export interface Guard {
  /** Settles once the guard has set its traps (or could not start): start the command only then. */
  readonly ready: Promise<void>;
  /** True once ready, while the guard runs (false: no /bin/sh, or it died): only then can it watch. */
  readonly started: boolean;
  /**
   * Tells the guard which process to stop if the tool dies; settles once the
   * guard has read it (it answers a query sent after it), not merely once it
   * is written: some runtimes call a write's callback before the data is in
   * the pipe.
   */
  watch(pid: number): Promise<void>;
  /**
   * True when `signal`, received by the tool at `receivedAt` (`performance.now()`
   * in the signal's listener), was also delivered to the guard (so to the whole
   * process group). Call it for each of the tool's deliveries, in order.
   */
  reachedGroup(signal: ForwardedSignal, receivedAt: number): Promise<boolean>;
  /** Ends the guard without it touching anything (the command has ended). */
  end(): void;
}

/**
 * timeout(1) sends to the tool's pid and then to the group; the tool may get
 * both (or one, when the kernel merges them), the guard one. Measured here:
 * the tool's listener runs 0.015 ms apart for the two; this bound leaves room
 * for a loaded machine. A pid-only signal sent this soon after a group one
 * is taken as part of it.
 */
const TWIN_MS = 100;
/**
 * A pid-only signal is forwarded only if no group delivery of it follows
 * within this long: timeout(1) signals the tool, then the group, and on a
 * loaded machine it can be preempted between the two (seen in CI: the
 * command got SIGTERM twice). Forwarding a pid-only signal costs this delay.
 */
const FOLLOW_MS = 200;
/**
 * A report no delivery to the tool used up (the kernel merged two group
 * deliveries to the tool, not to the guard) is forgotten after this long,
 * so it cannot swallow a later pid-only signal.
 */
const UNMATCHED_MS = 1000;
/** A query can be lost when a signal interrupts the shell's `read` mid-line: it is repeated this often. */
const REPEAT_QUERY_MS = 100;

// The arguments: the signal numbers to trap. "got" tells a read cut short by
// a trap from the end of input (dash returns 1 for both).
const SCRIPT = `
got= pid=
trap '' PIPE
for n in "$@"; do trap "got=1; echo $n 2>/dev/null" "$n"; done
echo ready
kill_tree() {
  kill -STOP "$1" 2>/dev/null || return 0
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do kill_tree "$c"; done
  kill -KILL "$1" 2>/dev/null
}
gone() {
  i=0
  while [ $i -lt 2000 ]; do
    s=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null) || return 0
    case $s in Z*|X*|'') return 0 ;; esac
    i=$((i + 1))
  done
}
while :; do
  if IFS= read -r line; then
    case $line in
      pid\\ *) pid=\${line#pid } ;;
      \\?*) echo ".\${line#?}" 2>/dev/null ;;
    esac
  elif [ -n "$got" ]; then got=
  else break
  fi
done
if [ -n "$pid" ]; then kill_tree "$pid"; gone "$pid"; fi
`;

/**
 * Starts the guard. Undefined on Windows (no signals, no /bin/sh). It gets
 * `lockDescriptor` (posix) too, as its descriptor 3: after the tool's death
 * the lock then stays held until the guard has killed the command and seen it
 * gone, even when the command closed its own copy (else the next holder could
 * start while the command still ran: Bun and Deno start one fast enough).
 */
export function startGuard(lockDescriptor?: number): Guard | undefined {
  if (process.platform === 'win32') return undefined;
  const numbers = FORWARDED_SIGNALS.map((signal) => String(constants.signals[signal]));
  const stdio = lockDescriptor === undefined ? ['pipe', 'pipe', 'ignore'] : ['pipe', 'pipe', 'ignore', lockDescriptor];
  const child = spawn('/bin/sh', ['-c', SCRIPT, 'exclusive-guard', ...numbers], { stdio: stdio as ['pipe', 'pipe', 'ignore'] });
  child.on('error', () => {}); // no /bin/sh: we go on unguarded, forwarding every signal
  child.stdin.on('error', () => {});
  return connect(child);
}

function connect(child: ChildProcess): Guard {
  const connection = new GuardConnection(child);
  return {
    ready: connection.ready,
    get started() {
      return connection.running;
    },
    watch: (pid) => connection.watch(pid),
    reachedGroup: (signal, receivedAt) => connection.reachedGroup(signal, receivedAt),
    end() {
      // Killed, not told by a line: a line could be lost, and the guard would
      // then take our exit for a death and kill a pid that may be reused.
      child.kill('SIGKILL');
      child.stdout!.destroy();
      child.unref();
    },
  };
}

/** The tool's side of the guard's line protocol: its reports, queries and answers. */
class GuardConnection {
  readonly ready: Promise<void>;
  /** Settles when the guard has ended (or never started). */
  readonly #alive: Promise<void>;
  /** Reports not yet matched to a delivery to the tool, oldest first (`at`: when read, `performance.now()`). */
  #reports: Array<{ signal: number; at: number }> = [];
  /** Per signal number, when the tool received the last delivery that used up a report. */
  readonly #matched = new Map<number, number>();
  /** Pid-only deliveries waiting FOLLOW_MS for a group twin, per signal number. */
  readonly #followers = new Map<number, Array<(followed: boolean) => void>>();
  readonly #answers = new Map<number, () => void>();
  #nextQuery = 0;
  #buffered = '';
  #onReady: () => void = () => {};

  constructor(readonly child: ChildProcess) {
    this.ready = new Promise<void>((resolve) => (this.#onReady = resolve));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.#read(chunk));
    this.#alive = new Promise<void>((resolve) =>
      child.once('exit', () => {
        this.running = false;
        resolve();
      })
    );
    child.once('error', () => this.#onReady()); // never started
    void this.#alive.then(() => this.#onReady());
  }

  /** True from its "ready" until it exits. */
  running = false;

  /** Settles once the line is written to the guard's pipe (at once if it cannot be). */
  send(line: string): Promise<void> {
    if (!this.child.stdin!.writable) return Promise.resolve();
    return new Promise<void>((resolve) => this.child.stdin!.write(`${line}\n`, () => resolve()));
  }

  /** See Guard.watch: settles once the guard has read the pid (it answers a query only after the lines before it). */
  async watch(pid: number): Promise<void> {
    void this.send(`pid ${pid}`);
    await this.#settled();
  }

  /** See Guard.reachedGroup. */
  async reachedGroup(signal: ForwardedSignal, receivedAt: number): Promise<boolean> {
    if (this.child.pid === undefined) return false;
    await this.#settled();
    const number = constants.signals[signal];
    this.#reports = this.#reports.filter((r) => r.at > receivedAt - UNMATCHED_MS);
    const report = this.#reports.find((r) => r.signal === number);
    if (report !== undefined) {
      // Used up, with any report of a burst the kernel merged into this one delivery to the tool.
      this.#reports = this.#reports.filter((r) => r.signal !== number || r.at - report.at >= TWIN_MS);
      this.#matched.set(number, receivedAt);
      return true;
    }
    const last = this.#matched.get(number);
    if (last !== undefined && receivedAt - last < TWIN_MS) return true;
    return this.#followedByGroup(number);
  }

  /** True when a group delivery of `number` reaches the guard within FOLLOW_MS (it is then used up). */
  #followedByGroup(number: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const waiting = this.#followers.get(number) ?? [];
      this.#followers.set(number, waiting);
      const settle = (followed: boolean): void => {
        clearTimeout(timer);
        waiting.splice(waiting.indexOf(settle), 1);
        resolve(followed);
      };
      const timer = setTimeout(() => settle(false), FOLLOW_MS);
      waiting.push(settle);
      void this.#alive.then(() => waiting.includes(settle) && settle(false));
    });
  }

  /**
   * Takes a report as a waiting pid-only delivery's group twin. Done as the
   * report is read, before any answer after it: the tool's own delivery of
   * that group signal then finds it matched, not a report of its own.
   */
  #report(signal: number, at: number): void {
    const follower = this.#followers.get(signal)?.[0];
    if (follower === undefined) this.#reports.push({ signal, at });
    else {
      this.#matched.set(signal, at);
      follower(true);
    }
  }

  #read(chunk: string): void {
    this.#buffered += chunk;
    const lines = this.#buffered.split('\n');
    this.#buffered = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('.')) this.#answers.get(Number(line.slice(1)))?.();
      else if (line === 'ready') {
        this.running = true;
        this.#onReady();
      } else this.#report(Number(line), performance.now());
    }
  }

  /** Waits until the guard has reported every signal delivered to it before now. */
  #settled(): Promise<void> {
    const id = this.#nextQuery++;
    return new Promise<void>((resolve) => {
      const timer = setInterval(() => void this.send(`?${id}`), REPEAT_QUERY_MS);
      const done = (): void => {
        clearInterval(timer);
        this.#answers.delete(id);
        resolve();
      };
      this.#answers.set(id, done);
      void this.#alive.then(done); // a dead guard answers nothing: treat its reports so far as all
      void this.send(`?${id}`);
    });
  }
}
