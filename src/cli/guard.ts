import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { FORWARDED_SIGNALS, type ForwardedSignal } from './signals.js';

/**
 * The guard: a tiny `/bin/sh` started next to the command, in the tool's
 * process group, with two jobs the tool cannot do itself.
 *
 * 1. It notices the tool's death. Its stdin is a pipe whose other end only
 *    the tool holds, so it reads end-of-file when the tool dies, however it
 *    died (kill -9, an OOM kill, a real-time signal). It then kills the
 *    command and its descendants, frozen first so none can fork away (Linux;
 *    elsewhere the command alone): a command never runs on without its lock.
 *    With every driver, posix included: the descriptor 3 posix hands the
 *    command (as flock(1) does) keeps the lock only while the command keeps
 *    it open, and many close every descriptor above 2 (sudo, daemons).
 *
 * 2. It tells the tool whether a signal the tool received was sent to the
 *    whole group (a terminal's Ctrl-C, `kill %1`, `kill -- -PGID`,
 *    `timeout`, systemd killing every process of a unit): the guard got it
 *    too, and so did the command, which must not get it a second time. A
 *    signal sent to the tool's pid alone is forwarded. The guard reports each
 *    signal it traps; a query ("?id") is answered (".id") only after the traps
 *    of signals delivered before it have run (the shell runs pending traps
 *    before its next command), so the answer is exact, not a matter of time.
 *    Each report stands for one group delivery, so it accounts for one of
 *    the tool's deliveries and is then used up: a signal sent to the tool's
 *    pid a moment after a group one is forwarded. The one exception is
 *    timeout(1), which signals the tool, then the group, microseconds apart:
 *    a delivery that follows a matched one by less than TWIN_MS is its twin.
 */

/** A running guard (see the file comment). */
export interface Guard {
  /** Settles once the guard has set its traps (or could not start): start the command only then. */
  readonly ready: Promise<void>;
  /** Tells the guard which process to stop if the tool dies. Call it at once after starting the command. */
  watch(pid: number): void;
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
if [ -n "$pid" ]; then kill_tree "$pid"; fi
`;

/** Starts the guard. Undefined on Windows (no signals, no /bin/sh). */
export function startGuard(): Guard | undefined {
  if (process.platform === 'win32') return undefined;
  const numbers = FORWARDED_SIGNALS.map((signal) => String(constants.signals[signal]));
  const child = spawn('/bin/sh', ['-c', SCRIPT, 'exclusive-guard', ...numbers], { stdio: ['pipe', 'pipe', 'ignore'] });
  child.on('error', () => {}); // no /bin/sh: we go on unguarded, forwarding every signal
  child.stdin.on('error', () => {});
  return connect(child);
}

function connect(child: ChildProcess): Guard {
  /** Reports not yet matched to a delivery to the tool, oldest first (`at`: when read, `performance.now()`). */
  let reports: Array<{ signal: number; at: number }> = [];
  /** Per signal number, when the tool received the last delivery that used up a report. */
  const matched = new Map<number, number>();
  const answers = new Map<number, () => void>();
  let nextQuery = 0;
  let buffered = '';
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('.')) answers.get(Number(line.slice(1)))?.();
      else if (line === 'ready') onReady();
      else reports.push({ signal: Number(line), at: performance.now() });
    }
  });
  const alive = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', onReady); // never started
  void alive.then(onReady);
  const send = (line: string): void => {
    if (child.stdin!.writable) child.stdin!.write(`${line}\n`);
  };

  /** Waits until the guard has reported every signal delivered to it before now. */
  const settled = (): Promise<void> => {
    const id = nextQuery++;
    return new Promise<void>((resolve) => {
      const timer = setInterval(() => send(`?${id}`), REPEAT_QUERY_MS);
      const done = (): void => {
        clearInterval(timer);
        answers.delete(id);
        resolve();
      };
      answers.set(id, done);
      void alive.then(done); // a dead guard answers nothing: treat its reports so far as all
      send(`?${id}`);
    });
  };

  return {
    ready,
    watch: (pid) => send(`pid ${pid}`),
    async reachedGroup(signal, receivedAt) {
      if (child.pid === undefined) return false;
      await settled();
      const number = constants.signals[signal];
      reports = reports.filter((r) => r.at > receivedAt - UNMATCHED_MS);
      const report = reports.find((r) => r.signal === number);
      if (report !== undefined) {
        // Used up, with any report of a burst the kernel merged into this one delivery to the tool.
        reports = reports.filter((r) => r.signal !== number || r.at - report.at >= TWIN_MS);
        matched.set(number, receivedAt);
        return true;
      }
      const last = matched.get(number);
      return last !== undefined && receivedAt - last < TWIN_MS;
    },
    end() {
      // Killed, not told by a line: a line could be lost, and the guard would
      // then take our exit for a death and kill a pid that may be reused.
      child.kill('SIGKILL');
      child.stdout!.destroy();
      child.unref();
    },
  };
}
