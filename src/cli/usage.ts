/** The `--help` text (stdout, exit 0). */
export const HELP = `Usage:
  exclusive [options] <name> -- <command> [args...]
  exclusive status [name] [--json] [--dir <dir> | --driver <driver>]
  (a name starting with '-': --name <name> in place of <name>)

Runs <command> holding the lock <name>, so that it never runs twice at once
(across processes, and users sharing the lock directory). The lock is released
when the command ends. The command never runs without the lock: if exclusive
itself is killed (even with kill -9), the command is killed too (SIGKILL, with
what it started). With the posix driver it also gets the lock file as
descriptor 3, as with flock(1).

Options:
  -n, --nonblock                 fail at once when the lock is held (default)
  -w, --wait <seconds>           wait up to <seconds> for the lock: seconds, not
                                 milliseconds (decimals allowed; 0 = for ever)
  -E, --conflict-exit-code <n>   exit code when the lock is held (default: 1)
  -q, --quiet                    no message when the lock is held
  -v, --verbose                  say on stderr which lock file it uses, when it
                                 waits, and how long getting the lock took
  -s, --shared                   take the lock shared (as flock -s): many
                                 shared holders at once, never with an
                                 exclusive one; a waiting exclusive one goes first
      --limit <n>                a counted lock: at most <n> holders at once
                                 (1 to 64; every user of the name gives the same)
      --name <name>              the lock name, for one starting with '-'
      --dir <dir>                lock directory (default: $EXCLUSIVE_PROCESS_DIR,
                                 else /run/lock or /var/lock if mode 1777,
                                 else /tmp)
      --driver <driver>          posix, windows, portable, postgres or redis
                                 (default: the platform's: posix or windows)
      --database-url <url>       postgres: postgres://user:pass@host:5432/db
                                 (default: the PG* environment variables)
      --redis-url <url>          redis: redis://user:pass@host:6379/0
                                 (default: $REDIS_URL, else redis://localhost:6379)
      --json                     status: print JSON instead of a table
  -h, --help                     show this help
  -V, --version                  show the version

Status:
  exclusive status               list the locks in the lock directory
  exclusive status <name>        exit 0 when <name> is free, 1 when it is held
                                 (shared and counted locks: every holder, with its mode)

Exit status:
  the command's own exit status; if a signal killed it, exclusive kills itself
  with the same signal (128+n for signals that dump core);
  <n> of -E (default 1) when the lock is held; 2 for a usage error;
  125 when exclusive itself fails, or the lock is lost while the command runs
  (it gets SIGTERM, then SIGKILL 5 s later); 126 when the command cannot be executed;
  127 when the command is not found.

Signals that would end exclusive (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR) are passed on to the
command, once: not again when they were sent to the whole process group
(Ctrl-C, kill %1, timeout), which the command is part of. One sent to
exclusive alone is passed on 0.2 s later, unless the same signal reaches the
group by then, and one within 0.1 s after it is taken as part of it (timeout
sends both).

Differences from flock(1):
  - <name> is a lock name, not a file: any string; exclusive keeps the lock
    in a file of the lock directory (or a mutex, or a database lock).
  - It does not wait by default (flock waits for ever): -w <seconds> waits,
    and -w 0 waits for ever (with flock, -w 0 does not wait).
  - When the lock is held it says so, with the holder's pid, on stderr
    (-q: silently), and exits 1 (-E <n>: with <n>).
  - No -o, -u, -F or -c: put 'sh -c "..."' after '--'. With -s, a waiting
    exclusive holder goes before new shared ones (flock lets them starve it).
  - Its own failures exit 125, and a command that cannot run 126 or 127.
  - Signals ignored when it starts (nohup, a script's background job) are
    not ignored by the command: Node resets them at start-up. Put nohup
    after '--': exclusive <name> -- nohup <command>.
  - The library (Exclusive.lock({ wait })) counts wait in milliseconds.

Example (crontab):
  */5 * * * * exclusive -q -E 75 sync-mail -- /usr/local/bin/sync-mail --all
`;

/** The one-line pointer printed after a usage error (stderr, exit 2). */
export const TRY_HELP = "Try 'exclusive --help' for more information.";
