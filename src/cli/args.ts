/**
 * Command-line parsing for `exclusive`, by hand rather than with
 * `util.parseArgs`: the tool has few options, and hand parsing lets every
 * mistake get a message that names the fix.
 *
 * A command line containing `--` is a run (`exclusive [options] <name> --
 * <command>`); without one, `status` is a subcommand. So a lock may be
 * called `status` (`exclusive status -- cmd`), and a run that forgot the
 * `--` is reported as such instead of running the lock name as a command.
 */

import { MAX_LIMIT, MAX_WAIT_MS } from '../api/options.js';
import { didYouMean } from '../shared/suggest.js';

/** Driver names the tool accepts for `--driver`. */
export const CLI_DRIVERS = ['posix', 'windows', 'portable', 'postgres', 'redis'] as const;

/** A built-in driver name accepted by `--driver`. */
export type CliDriver = (typeof CLI_DRIVERS)[number];

/** Where the locks live: shared by `run` and `status`. */
export interface LockPlace {
  /** `--dir`, or undefined for the library's default directory. */
  dir: string | undefined;
  /** `--driver`, or undefined for the platform's default driver. */
  driver: CliDriver | undefined;
  /** `--database-url` (postgres driver only); undefined: pg's `PG*` environment variables. */
  databaseUrl: string | undefined;
  /** `--redis-url` (redis driver only); undefined: `$REDIS_URL`, else `redis://localhost:6379`. */
  redisUrl: string | undefined;
}

/** `exclusive [options] <name> -- <command> [args...]` */
export interface RunRequest extends LockPlace {
  kind: 'run';
  name: string;
  /** The command and its arguments, as given after `--` (never empty). */
  command: [string, ...string[]];
  /** Milliseconds to wait for the lock: 0 = fail at once, Infinity = for ever. */
  waitMs: number;
  /** Exit code when the lock is held by someone else (`-E`). */
  conflictExitCode: number;
  /** No message when the lock is held (`-q`). */
  quiet: boolean;
  /** Say on stderr which lock it takes, that it waits, and how long it took (`-v`). */
  verbose: boolean;
  /** `-s`: take the lock shared, as util-linux `flock -s`. */
  mode: 'exclusive' | 'shared';
  /** `--limit N`: a counted lock, at most N holders (1: a plain lock). */
  limit: number;
}

/** `exclusive status [name] [--json]` */
export interface StatusRequest extends LockPlace {
  kind: 'status';
  /** One lock to report on (then the exit code says held or free), or all of them. */
  name: string | undefined;
  json: boolean;
}

/** What the command line asks for. */
export type Request = RunRequest | StatusRequest | { kind: 'help' } | { kind: 'version' };

/** A mistake on the command line: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Longest finite wait, in whole seconds (see MAX_WAIT_MS). */
const MAX_WAIT_SECONDS = Math.floor(MAX_WAIT_MS / 1000);

interface OptionSpec {
  long: string;
  short?: string;
  /** Takes a value (`-w 5`, `-w5`, `--wait 5`, `--wait=5`). */
  value: boolean;
}

const OPTIONS: readonly OptionSpec[] = [
  { long: 'nonblock', short: 'n', value: false },
  { long: 'wait', short: 'w', value: true },
  { long: 'conflict-exit-code', short: 'E', value: true },
  { long: 'quiet', short: 'q', value: false },
  { long: 'verbose', short: 'v', value: false },
  { long: 'shared', short: 's', value: false },
  { long: 'limit', value: true },
  { long: 'name', value: true },
  { long: 'dir', value: true },
  { long: 'driver', value: true },
  { long: 'database-url', value: true },
  { long: 'redis-url', value: true },
  { long: 'json', value: false },
  { long: 'help', short: 'h', value: false },
  { long: 'version', short: 'V', value: false },
];

/** One option occurrence, in command-line order (so the last of `-n`/`-w` wins). */
interface Given {
  spec: OptionSpec;
  value: string | undefined;
  /** As typed, for messages. */
  flag: string;
}

/** Parses the arguments after `exclusive` (i.e. `process.argv.slice(2)`). Throws {@link UsageError}. */
export function parseArgs(argv: readonly string[]): Request {
  const separator = argv.indexOf('--');
  const before = separator < 0 ? argv : argv.slice(0, separator);
  const { given, positionals } = scan(before);
  if (given.some((g) => g.spec.long === 'help')) return { kind: 'help' };
  if (given.some((g) => g.spec.long === 'version')) return { kind: 'version' };
  const place = lockPlace(given);

  if (separator < 0) {
    if (positionals[0] === 'status') return statusRequest(given, positionals.slice(1), place);
    if (positionals.length === 0 && last(given, 'name') === undefined) throw new UsageError('missing the lock name and the command');
    throw new UsageError(`missing '--' before the command (usage: exclusive [options] <name> -- <command> [args...])`);
  }

  const command = argv.slice(separator + 1);
  rejectOptions(given, ['json'], 'a run (it is a status option)');
  // Option values first: in `-w job -- cmd` the mistake is the missing number, not the name.
  const wait = waitMs(given);
  const exitCode = conflictExitCode(given);
  const { mode, limit } = modeOf(given);
  const name = nameOption(given, positionals);
  if (name === undefined && positionals.length === 0) throw new UsageError(`missing the lock name before '--'`);
  if (positionals.length > 1) {
    throw new UsageError(`expected one lock name before '--', got ${positionals.length}: ${positionals.map(quote).join(' ')}`);
  }
  if (command.length === 0) throw new UsageError(`missing the command after '--'`);
  if (command[0] === '') throw new UsageError(`the command after '--' is empty`);
  return {
    kind: 'run',
    name: name ?? lockName(positionals[0]),
    command: command as [string, ...string[]],
    waitMs: wait,
    conflictExitCode: exitCode,
    quiet: given.some((g) => g.spec.long === 'quiet'),
    verbose: given.some((g) => g.spec.long === 'verbose'),
    mode,
    limit,
    ...place,
  };
}

/** `-s` (shared) and `--limit N` (1 to MAX_LIMIT), which do not go together. */
function modeOf(given: Given[]): { mode: RunRequest['mode']; limit: number } {
  const mode = given.some((g) => g.spec.long === 'shared') ? 'shared' : 'exclusive';
  const choice = given.findLast((g) => g.spec.long === 'limit');
  if (choice === undefined) return { mode, limit: 1 };
  const text = choice.value ?? '';
  const limit = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT)) {
    throw new UsageError(`option '${choice.flag}' needs a whole number of holders from 1 to ${MAX_LIMIT}, got ${quote(text)}`);
  }
  if (mode === 'shared' && limit > 1)
    throw new UsageError(`options '-s' and '${choice.flag}' do not go together: shared holders are not counted`);
  return { mode, limit };
}

function statusRequest(given: Given[], positionals: string[], place: LockPlace): StatusRequest {
  rejectOptions(given, ['nonblock', 'wait', 'conflict-exit-code', 'quiet', 'verbose', 'shared', 'limit'], "'status'");
  if (positionals.length > 1) {
    throw new UsageError(`'status' takes at most one lock name, got ${positionals.length}: ${positionals.map(quote).join(' ')}`);
  }
  const name = nameOption(given, positionals);
  return {
    kind: 'status',
    name: name ?? (positionals.length === 0 ? undefined : lockName(positionals[0])),
    json: given.some((g) => g.spec.long === 'json'),
    ...place,
  };
}

/** Splits options from positionals, expanding `-nq`, `-w5`, `--wait=5`. */
function scan(args: readonly string[]): { given: Given[]; positionals: string[] } {
  const given: Given[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const flag = eq < 0 ? arg : arg.slice(0, eq);
      const spec = OPTIONS.find((o) => `--${o.long}` === flag);
      if (spec === undefined) throw new UsageError(`unknown option '${flag}'${suggestion(flag)}`);
      if (!spec.value) {
        if (eq >= 0) throw new UsageError(`option '${flag}' takes no value`);
        given.push({ spec, value: undefined, flag });
      } else if (eq >= 0) {
        given.push({ spec, value: arg.slice(eq + 1), flag });
      } else {
        given.push({ spec, value: valueAfter(args, ++i, flag), flag });
      }
    } else if (arg.startsWith('-') && arg.length > 1) {
      // A group of short flags; a flag taking a value ends it (`-nw5`, `-nw 5`).
      for (let j = 1; j < arg.length; j++) {
        const flag = `-${arg[j]}`;
        const spec = OPTIONS.find((o) => o.short === arg[j]);
        if (spec === undefined) throw new UsageError(`unknown option '${flag}'`);
        if (!spec.value) {
          given.push({ spec, value: undefined, flag });
          continue;
        }
        given.push({ spec, value: j + 1 < arg.length ? arg.slice(j + 1) : valueAfter(args, ++i, flag), flag });
        break;
      }
    } else {
      positionals.push(arg);
    }
  }
  return { given, positionals };
}

/** flock(1)'s long options that we spell differently. */
const FLOCK_NAMES: Readonly<Record<string, string>> = { timeout: 'wait', nb: 'nonblock' };

/** `: did you mean '--wait'?` for `--wiat`, `--Wait` or flock's `--timeout`; '' when nothing is close. */
function suggestion(flag: string): string {
  return didYouMean(
    flag.slice(2),
    OPTIONS.map((o) => o.long),
    FLOCK_NAMES
  ).replace(/'(.*)'/, "'--$1'");
}

function valueAfter(args: readonly string[], i: number, flag: string): string {
  if (i >= args.length) throw new UsageError(`option '${flag}' needs a value`);
  return args[i];
}

function rejectOptions(given: Given[], names: string[], where: string): void {
  const wrong = given.find((g) => names.includes(g.spec.long));
  if (wrong !== undefined) throw new UsageError(`option '${wrong.flag}' does not apply to ${where}`);
}

/** The last occurrence of an option taking a value. */
function last(given: Given[], long: string): Given | undefined {
  return given.findLast((g) => g.spec.long === long);
}

function lockPlace(given: Given[]): LockPlace {
  const dir = last(given, 'dir');
  if (dir !== undefined && dir.value === '') throw new UsageError(`option '${dir.flag}' needs a directory, got an empty string`);
  const driver = last(given, 'driver');
  if (driver !== undefined && !(CLI_DRIVERS as readonly string[]).includes(driver.value!)) {
    throw new UsageError(`option '${driver.flag}' must be one of ${CLI_DRIVERS.join(', ')}, got ${quote(driver.value!)}`);
  }
  const url = last(given, 'database-url');
  const redisUrl = last(given, 'redis-url');
  const server = driver?.value === 'postgres' || driver?.value === 'redis';
  if (server && dir !== undefined) throw new UsageError(`option '${dir.flag}' does not apply to the ${driver.value} driver`);
  if (url !== undefined && driver?.value !== 'postgres') throw new UsageError(`option '${url.flag}' needs '--driver postgres'`);
  if (redisUrl !== undefined && driver?.value !== 'redis') throw new UsageError(`option '${redisUrl.flag}' needs '--driver redis'`);
  return { dir: dir?.value, driver: driver?.value as CliDriver | undefined, databaseUrl: url?.value, redisUrl: redisUrl?.value };
}

/**
 * `--name <name>`: the lock name as an option value, so it may start with `-`
 * (`--name=-x`, `--name -x`). Undefined when not given; then the name is the
 * positional argument, and giving both is a mistake.
 */
function nameOption(given: Given[], positionals: string[]): string | undefined {
  const option = last(given, 'name');
  if (option === undefined) return undefined;
  if (positionals.length > 0) throw new UsageError(`give the lock name once: option '${option.flag}' and ${quote(positionals[0])}`);
  return lockName(option.value!);
}

function lockName(name: string): string {
  if (name === '') throw new UsageError('the lock name must not be empty');
  if (!name.isWellFormed()) throw new UsageError('the lock name contains ill-formed Unicode');
  return name;
}

/** `-n` fails at once (the default), `-w SECONDS` waits (0: for ever); the last one given wins. */
function waitMs(given: Given[]): number {
  const choice = given.findLast((g) => g.spec.long === 'wait' || g.spec.long === 'nonblock');
  if (choice === undefined || choice.spec.long === 'nonblock') return 0;
  const text = choice.value!;
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text)) {
    throw new UsageError(`option '${choice.flag}' needs a number of seconds (0 waits for ever), got ${quote(text)}`);
  }
  const seconds = Number(text);
  if (seconds > MAX_WAIT_SECONDS) {
    throw new UsageError(`option '${choice.flag}' must be at most ${MAX_WAIT_SECONDS} seconds (use 0 to wait for ever), got ${text}`);
  }
  return seconds === 0 ? Infinity : seconds * 1000;
}

function conflictExitCode(given: Given[]): number {
  const option = last(given, 'conflict-exit-code');
  if (option === undefined) return 1;
  const text = option.value!;
  if (!/^\d+$/.test(text) || Number(text) > 255) {
    throw new UsageError(`option '${option.flag}' needs an exit code from 0 to 255, got ${quote(text)}`);
  }
  return Number(text);
}

function quote(text: string): string {
  return JSON.stringify(text);
}
