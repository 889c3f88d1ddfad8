// The `exclusive` command, run as a user runs it: the package is built and
// packed, the tarball installed into a temporary project, and the tests run
// `npx exclusive ...` there, or the `node_modules/.bin/exclusive` link that
// npm made (the same file npx ends up running; without npx in between, the
// pid we signal is the tool's own).
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { constants, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, UsageError, type RunRequest } from '../src/cli/args.js';
import { displayCommand } from '../src/cli/holder-command.js';
import { procStat } from '../src/shared/process-identity.js';
import { compileCopy, packageCopy } from './helpers/package-copy.js';
import { openFiles, ROOT } from './helpers/processes.js';
import { runtimeBinary, runtimeEnv, scriptArgv, testRuntime } from './helpers/runtimes.js';
import { Client } from 'pg';
import { postgresInstalled, startPostgres, template } from './helpers/postgres-server.js';
import { startRedis } from './helpers/redis-server.js';
import Redis from 'ioredis';

const CHILD = join(ROOT, 'test', 'fixtures', 'cli-child.cjs');
/** The runtime the tool runs in (the commands it runs are Node's). */
const RUNTIME = testRuntime();
const TRY_HELP = "Try 'exclusive --help' for more information.\n";
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The optional peer dependency, at the version the repository tests with (so npm finds it in its cache). */
const PG = `pg@${(JSON.parse(readFileSync(join(ROOT, 'node_modules', 'pg', 'package.json'), 'utf8')) as { version: string }).version}`;

/** A Redis client the installed package can load for `--driver redis`, at the repository's version. */
const IOREDIS = `ioredis@${(JSON.parse(readFileSync(join(ROOT, 'node_modules', 'ioredis', 'package.json'), 'utf8')) as { version: string }).version}`;

let root = '';
let project = '';
let bin = '';
const started = new Set<ChildProcess>();
const orphans = new Set<number>();

test.before(async () => {
  // The postgres tests start a server each, all at once: initdb runs now, while the machine is quiet.
  if (postgresInstalled()) await template();
  root = mkdtempSync(join(tmpdir(), 'exclusive-cli-test-'));
  const pkg = packageCopy(root);
  const output = compileCopy(pkg);
  // Only errors in the tool's own files stop us (other files may be mid-edit by others).
  const ours = output.split('\n').filter((line) => /^src\/cli/.test(line));
  if (!existsSync(join(pkg, 'dist', 'cli.js')) || ours.length > 0) throw new Error(`build failed:\n${output}`);
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', root], { cwd: pkg, encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`npm pack failed:\n${pack.stderr}`);
  const tarball = join(root, (JSON.parse(pack.stdout) as Array<{ filename: string }>)[0].filename);

  project = join(root, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), '{ "name": "cli-test-project", "private": true }\n');
  const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball, PG, IOREDIS], {
    cwd: project,
    encoding: 'utf8',
  });
  if (install.status !== 0) throw new Error(`npm install failed:\n${install.stderr}`);
  bin = join(project, 'node_modules', '.bin', 'exclusive');
});

test.after.always(() => {
  for (const child of started) child.kill('SIGKILL');
  for (const pid of orphans) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Running {
  child: ChildProcess;
  /** Resolves with the stdout so far once it contains `text`. */
  waitFor(text: string): Promise<string>;
  done: Promise<Result>;
  /** Resolves when the process has ended (`done` also waits for its stdout and stderr to close, which a surviving child keeps open). */
  exited: Promise<void>;
}

interface LaunchOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed (default: closed at once)... */
  input?: string;
  /** ...unless this is set: then stdin stays open for the test to write. */
  keepStdin?: boolean;
  /** In a new session and process group of its own (so `kill(-pid)` reaches it and its children only). */
  detached?: boolean;
}

function launch(file: string, args: string[], options: LaunchOptions = {}): Running {
  const child = spawn(file, args, {
    cwd: project,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: options.detached,
  });
  started.add(child);
  child.stdin.on('error', () => {}); // EPIPE when it ends without reading
  if (!options.keepStdin) child.stdin.end(options.input ?? '');
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const waiter of waiters) waiter();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<Result>((resolve) =>
    child.on('close', (code, signal) => {
      started.delete(child);
      for (const waiter of waiters) waiter();
      resolve({ code, signal, stdout, stderr });
    })
  );
  const waitFor = (text: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (stdout.includes(text)) {
          waiters.delete(check);
          resolve(stdout);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          waiters.delete(check);
          reject(new Error(`ended before printing ${JSON.stringify(text)}; stdout: ${stdout}; stderr: ${stderr}`));
        }
      };
      waiters.add(check);
      check();
    });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, waitFor, done, exited };
}

/**
 * Starts `exclusive args...` from the installed package: in Node through the
 * bin link npm made, in Bun or Deno (EXCLUSIVE_TEST_RUNTIME) by running the
 * package's dist/cli.js with that runtime.
 */
function start(args: string[], options: LaunchOptions = {}): Running {
  if (RUNTIME === 'node') return launch(bin, args, options);
  const [runtime, ...argv] = scriptArgv(RUNTIME, join(project, 'node_modules', 'exclusive-process', 'dist', 'cli.js'), args);
  return launch(runtime, argv, { ...options, env: { ...runtimeEnv(RUNTIME), ...options.env } });
}

function exclusive(args: string[], options?: LaunchOptions): Promise<Result> {
  return start(args, options).done;
}

/** `npx exclusive args...`; npm's own warnings (this machine's npmrc) are dropped from stderr. */
async function npx(args: string[]): Promise<Result> {
  const result = await launch('npx', ['--no-install', 'exclusive', ...args]).done;
  return {
    ...result,
    stderr: result.stderr
      .split('\n')
      .filter((line) => !line.startsWith('npm warn'))
      .join('\n'),
  };
}

function lockDir(): string {
  return mkdtempSync(join(root, 'locks-'));
}

function node(...args: string[]): string[] {
  return ['node', CHILD, ...args];
}

/** `exclusive --dir <dir> <name> -- <a command that holds until stopped>`, once the command runs. */
async function holdLock(dir: string, name: string): Promise<{ pid: number; stop(): Promise<void> }> {
  const tool = start(['--dir', dir, name, '--', ...node('hold')]);
  await tool.waitFor('ready');
  return {
    pid: tool.child.pid!,
    async stop() {
      tool.child.kill('SIGTERM');
      await tool.done;
    },
  };
}

function lockFile(dir: string, name: string): string {
  return join(dir, `exclusive-process.${name}.lock`);
}

/** The children of a process (of any of its threads). */
function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
    readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number)
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once `count` of the processes have ended. */
function ended(processes: Running[], count: number): Promise<void> {
  let left = count;
  return new Promise((resolve) => {
    for (const p of processes) void p.exited.then(() => --left === 0 && resolve());
  });
}

/** Resolves once `pid` has `file` open (a waiting tool has its lock file open), polling. */
async function hasOpen(pid: number, file: string): Promise<void> {
  while (!openFiles(pid).includes(file)) await sleep(10);
}

function readyPid(stdout: string): number {
  return Number(/ready (\d+)/.exec(stdout)![1]);
}

/**
 * At most this many of this file's tests run at once. All of them at once
 * (ava's default) start some 150 processes together: a 2-core machine was
 * then starved for half a minute, and tests bound in time failed (a
 * command's `sleep 30` ended before its test saw it start).
 */
const CONCURRENT_TESTS = 8;
let runningTests = 0;
const queuedTests: Array<() => void> = [];

/** Waits for a place among the CONCURRENT_TESTS; resolves with the function that gives it back. */
async function testSlot(): Promise<() => void> {
  if (runningTests >= CONCURRENT_TESTS) await new Promise<void>((resolve) => queuedTests.push(resolve));
  runningTests++;
  return () => {
    runningTests--;
    queuedTests.shift()?.();
  };
}

/** A test bounded in time (from when it gets its slot): these run real processes, and a hang should name its test, not stall the run. */
function cliTest(title: string, fn: (t: ExecutionContext) => Promise<void> | void): void {
  test(title, async (t) => {
    const done = await testSlot();
    try {
      t.timeout(90_000);
      await fn(t);
    } finally {
      done();
    }
  });
}

/**
 * A test of the tool as npm installs it (its bin, npx: Node) or that needs
 * Node: registered in the Node run only (the TAP counts only tests that ran).
 */
function nodeOnly(title: string, fn: (t: ExecutionContext) => Promise<void> | void): void {
  if (RUNTIME === 'node') cliTest(title, fn);
}

/** The library's conflict message, prefixed like every other line of the tool (cron mail says where it came from). */
const conflictMessage = (name: string, pid: number): string => `exclusive: Another '${name}' process is already running (pid ${pid}).\n`;

/** The library's message for a wait that ran out, naming the holder as its lock file records it. */
function timedOutMessage(dir: string, name: string, pid: number, after: string): string {
  const text = readFileSync(lockFile(dir, name), 'utf8');
  const { command, since } = JSON.parse(text.slice(0, text.indexOf('\n'))) as { command: string; since: string };
  return (
    `exclusive: Gave up waiting for the lock '${name}' after ${after}: it is still held by another process (pid ${pid}, \`${command}\`, since ${since}). ` +
    'Wait longer (`-w`), or find out why the holder keeps it so long.\n'
  );
}

// ---------------------------------------------------------------- packaging

nodeOnly('the installed bin keeps its shebang and is executable', (t) => {
  const cli = join(project, 'node_modules', 'exclusive-process', 'dist', 'cli.js');
  t.is(readFileSync(cli, 'utf8').split('\n')[0], '#!/usr/bin/env node');
  t.is(statSync(cli).mode & 0o111, 0o111);
  t.is(readlinkSync(bin), '../exclusive-process/dist/cli.js');
});

cliTest(`the tool runs in ${RUNTIME}`, async (t) => {
  const dir = lockDir();
  const { pid, stop } = await holdLock(dir, 'runtime');
  t.is(realpathSync(`/proc/${pid}/exe`), realpathSync(runtimeBinary(RUNTIME)));
  await stop();
});

nodeOnly('npx exclusive --version prints the package version', async (t) => {
  t.deepEqual(await npx(['--version']), { code: 0, signal: null, stdout: `${VERSION}\n`, stderr: '' });
  t.is((await exclusive(['-V'])).stdout, `${VERSION}\n`);
});

nodeOnly('npx exclusive --help prints the usage on stdout', async (t) => {
  const result = await npx(['--help']);
  t.is(result.code, 0);
  t.is(result.stderr, '');
  t.true(result.stdout.startsWith('Usage:\n  exclusive [options] <name> -- <command> [args...]\n  exclusive status [name] [--json]'));
  for (const option of [
    '-n, --nonblock',
    '-w, --wait <seconds>',
    '-E, --conflict-exit-code <n>',
    '-q, --quiet',
    '-v, --verbose',
    '--dir <dir>',
    '--driver <driver>',
    '--json',
    '-h, --help',
    '-V, --version',
  ]) {
    t.true(result.stdout.includes(option), option);
  }
  // The unit where a user looks for it, and what a flock(1) user would get wrong.
  t.true(
    result.stdout.includes(`  -w, --wait <seconds>           wait up to <seconds> for the lock: seconds, not
                                 milliseconds (decimals allowed; 0 = for ever)
`)
  );
  t.true(
    result.stdout.includes(`Differences from flock(1):
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
`)
  );
  t.is((await exclusive(['-h'])).stdout, result.stdout);
});

nodeOnly('npx exclusive runs the command and passes its output and exit code 0 through', async (t) => {
  const dir = lockDir();
  const result = await npx(['--dir', dir, 'job', '--', 'sh', '-c', 'echo out; echo err >&2']);
  t.deepEqual(result, { code: 0, signal: null, stdout: 'out\n', stderr: 'err\n' });
  t.deepEqual(readdirSync(dir), [], 'the lock file is removed at exit');
});

// ---------------------------------------------------------------- exit status

cliTest('the command exit code passes through', async (t) => {
  const dir = lockDir();
  t.like(await exclusive(['--dir', dir, 'job', '--', 'sh', '-c', 'exit 3']), { code: 3, signal: null, stderr: '' });
  t.like(await exclusive(['--dir', dir, 'job', '--', 'sh', '-c', 'exit 255']), { code: 255, signal: null });
});

cliTest('a command killed by a signal kills the tool with the same signal', async (t) => {
  const dir = lockDir();
  t.like(await exclusive(['--dir', dir, 'job', '--', 'sh', '-c', 'kill -TERM $$']), { code: null, signal: 'SIGTERM', stderr: '' });
  t.like(await exclusive(['--dir', dir, 'job', '--', 'sh', '-c', 'kill -KILL $$']), { code: null, signal: 'SIGKILL' });
  // SIGPIPE, which Node itself ignores, is re-raised too.
  t.like(await exclusive(['--dir', dir, 'job', '--', 'sh', '-c', 'kill -PIPE $$']), { code: null, signal: 'SIGPIPE' });
  t.like(await exclusive(['--dir', dir, 'job', '--', 'true']), { code: 0 }, 'and the lock was released each time');
});

cliTest('a command killed by a core-dumping signal gives exit code 128+n', async (t) => {
  const dir = lockDir();
  t.like(await exclusive(['--dir', dir, 'job', '--', 'sh', '-c', 'kill -QUIT $$']), { code: 131, signal: null });
  t.like(await exclusive(['--dir', dir, 'job', '--', 'sh', '-c', 'kill -ABRT $$']), { code: 134, signal: null });
});

cliTest('stdin passes through to the command', async (t) => {
  t.like(await exclusive(['--dir', lockDir(), 'job', '--', 'cat'], { input: 'hello\n' }), { code: 0, stdout: 'hello\n' });
});

cliTest('a missing command exits 127 and a non-executable one 126, releasing the lock', async (t) => {
  const dir = lockDir();
  t.deepEqual(await exclusive(['--dir', dir, 'job', '--', 'no-such-command-xyz']), {
    code: 127,
    signal: null,
    stdout: '',
    stderr: 'exclusive: no-such-command-xyz: command not found\n',
  });
  const script = join(dir, 'not-executable.sh');
  writeFileSync(script, 'exit 0\n', { mode: 0o644 });
  t.deepEqual(await exclusive(['--dir', dir, 'job', '--', script]), {
    code: 126,
    signal: null,
    stdout: '',
    stderr: `exclusive: ${script}: permission denied\n`,
  });
  t.like(await exclusive(['--dir', dir, '-n', 'job', '--', 'true']), { code: 0 });
});

// ---------------------------------------------------------------- contention

cliTest('two copies racing: exactly one runs, the other exits with -E and the die message', async (t) => {
  const dir = lockDir();
  for (let round = 0; round < 4; round++) {
    const log = join(dir, `race-${round}.log`);
    const gate = join(dir, `gate-${round}`);
    // The winner's command runs until the others have given up (however slow
    // the machine), so a late starter cannot pass for a second winner.
    const copies = [0, 1, 2].map((i) => start(['--dir', dir, '-E', '75', 'race', '--', ...node('gate', log, String(i), gate)]));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended(copies, 2), new Promise((resolve) => (timer = setTimeout(resolve, 20_000)))]);
    clearTimeout(timer);
    writeFileSync(gate, '');
    const results = await Promise.all(copies.map((c) => c.done));
    const winners = results.map((r, i) => ({ r, pid: copies[i].child.pid! })).filter(({ r }) => r.code === 0);
    t.is(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`);
    const winner = winners[0];
    for (const result of results) {
      if (result === winner.r) continue;
      t.deepEqual(result, { code: 75, signal: null, stdout: '', stderr: conflictMessage('race', winner.pid) });
    }
    const ran = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    t.is(ran.length, 2);
    t.regex(ran[0], /^start [012]$/);
    t.is(ran[1], ran[0].replace('start', 'end'));
  }
});

cliTest('the conflict exit code defaults to 1; -q silences the message', async (t) => {
  const dir = lockDir();
  const holder = await holdLock(dir, 'busy');
  t.deepEqual(await exclusive(['--dir', dir, 'busy', '--', 'true']), {
    code: 1,
    signal: null,
    stdout: '',
    stderr: conflictMessage('busy', holder.pid),
  });
  t.deepEqual(await exclusive(['--dir', dir, '-q', '-E', '0', 'busy', '--', 'true']), { code: 0, signal: null, stdout: '', stderr: '' });
  t.like(await exclusive(['--dir', dir, '-nqE9', 'busy', '--', 'true']), { code: 9, stderr: '' });
  await holder.stop();
});

for (const wait of ['10', '0']) {
  cliTest(`-w ${wait} waits for the holder to finish, then runs${wait === '0' ? ' (0: for ever)' : ''}`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'order.log');
    const first = start([
      '--dir',
      dir,
      'queue',
      '--',
      'sh',
      '-c',
      `echo ready; echo "start A" >> ${log}; sleep 0.7; echo "end A" >> ${log}`,
    ]);
    await first.waitFor('ready');
    t.like(await exclusive(['--dir', dir, '-w', wait, 'queue', '--', ...node('log', log, 'B', '0')]), { code: 0, stderr: '' });
    t.like(await first.done, { code: 0 });
    t.is(readFileSync(log, 'utf8'), 'start A\nend A\nstart B\nend B\n', 'B ran only after A ended: it waited');
  });
}

cliTest('-w gives up after its timeout with the conflict code and the timed-out message', async (t) => {
  const dir = lockDir();
  const holder = await holdLock(dir, 'slow');
  const before = performance.now();
  const result = await exclusive(['--dir', dir, '--wait=0.4', '-E', '7', 'slow', '--', 'true']);
  const elapsed = performance.now() - before;
  t.deepEqual(result, { code: 7, signal: null, stdout: '', stderr: timedOutMessage(dir, 'slow', holder.pid, '400 ms') });
  t.true(elapsed >= 400, `${elapsed} ms`); // it waited; that it gave up at all shows the limit (the holder never lets go)
  await holder.stop();
});

cliTest('-n after -w fails at once (the last of -n and -w wins)', async (t) => {
  const dir = lockDir();
  const holder = await holdLock(dir, 'last');
  t.like(await exclusive(['--dir', dir, '-w', '0', '-n', 'last', '--', 'true']), { code: 1, stderr: conflictMessage('last', holder.pid) });
  await holder.stop();
});

cliTest('a signal while waiting ends the wait: the tool dies by it and runs nothing', async (t) => {
  const dir = lockDir();
  const holder = await holdLock(dir, 'w');
  const waiter = start(['--dir', dir, '-w', '0', 'w', '--', 'echo', 'ran']);
  await hasOpen(waiter.child.pid!, lockFile(dir, 'w')); // it is waiting, its handlers installed
  waiter.child.kill('SIGTERM');
  t.deepEqual(await waiter.done, { code: null, signal: 'SIGTERM', stdout: '', stderr: '' });
  await holder.stop();
});

// ---------------------------------------------------------------- signals and crashes

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  cliTest(`${signal} is forwarded once to the command; the lock is released when it ends`, async (t) => {
    const dir = lockDir();
    const received = join(dir, 'received');
    const tool = start(['--dir', dir, 'sig', '--', ...node('record', received, '42')]);
    await tool.waitFor('ready');
    t.is((await exclusive(['--dir', dir, 'status', 'sig'])).code, 1, 'held while the command runs');
    tool.child.kill(signal);
    t.like(await tool.done, { code: 42, signal: null, stderr: '' }, 'the tool waited for the command and took its exit code');
    t.is(readFileSync(received, 'utf8'), `${signal}\n`);
    t.is((await exclusive(['--dir', dir, 'status', 'sig'])).code, 0);
    t.like(await exclusive(['--dir', dir, '-n', 'sig', '--', 'true']), { code: 0 });
  });
}

cliTest('a forwarded SIGTERM that kills the command kills the tool by SIGTERM', async (t) => {
  const dir = lockDir();
  const tool = start(['--dir', dir, 'term', '--', 'sh', '-c', 'echo ready; exec sleep 300']);
  await tool.waitFor('ready');
  tool.child.kill('SIGTERM');
  t.like(await tool.done, { code: null, signal: 'SIGTERM' });
  t.deepEqual(readdirSync(dir), [], 'the lock file was removed before dying');
});

cliTest('Ctrl-C at a terminal reaches the command once, not once more through the tool', async (t) => {
  // `script` gives the tool a terminal; writing ^C to it makes the terminal
  // send SIGINT to the foreground process group (tool and command). `exec`
  // keeps script's shell out of that group: dash, unlike bash, would die of
  // the SIGINT itself and script would report 130 whatever the tool did.
  const dir = lockDir();
  const received = join(dir, 'received');
  const command = `exec ${bin} --dir ${dir} kb -- node ${CHILD} record ${received} 5`;
  const tty = launch('script', ['-qefc', command, '/dev/null'], { keepStdin: true });
  await tty.waitFor('ready');
  tty.child.stdin!.write('\x03');
  const result = await tty.done;
  t.is(result.code, 5, 'the command exited as it does on SIGINT, and script passed its code through');
  t.is(readFileSync(received, 'utf8'), 'SIGINT\n');
});

/**
 * A command (sh) that appends each signal it traps to `log`, says "ready
 * <pid>" (and creates `<stop>.ready`), and loops until `stop` exists;
 * `signals` are sh names (TERM, ALRM...).
 */
function trapping(log: string, stop: string, signals: string[]): string[] {
  // By number: dash knows no name for some (STKFLT).
  const traps = signals.map((s) => `trap 'echo ${s} >> ${log}' ${constants.signals[`SIG${s}` as NodeJS.Signals]};`).join(' ');
  return ['sh', '-c', `${traps} : > ${stop}.ready; echo ready $$; while [ ! -e ${stop} ]; do sleep 0.05; done`];
}

/** True while `pid` runs (not gone, not a zombie waiting for its new parent to reap it). */
function running(pid: number): boolean {
  const state = procStat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** A second run of the lock: its command says "alone" or "overlap" depending on whether `pid` still runs. */
function secondRun(place: string[], name: string, pid: number): Promise<Result> {
  return startSecondRun(place, name, pid).done;
}

function startSecondRun(place: string[], name: string, pid: number): Running {
  const check = `s=$(cut -d' ' -f3 /proc/${pid}/stat 2>/dev/null); case "$s" in ''|Z|X) echo alone;; *) echo overlap;; esac`;
  return start([...place, '-w', '20', name, '--', 'sh', '-c', check]);
}

for (const driver of ['posix', 'portable', 'postgres'] as const) {
  for (const death of ['SIGKILL', 'SIGRTMIN (uncatchable by Node)'] as const) {
    cliTest(`${driver}: a tool killed by ${death} never leaves its command running unlocked`, async (t) => {
      const dir = lockDir();
      let place = ['--driver', driver, '--dir', dir];
      if (driver === 'postgres') {
        const server = await startPostgres();
        t.teardown(() => server.stop());
        place = ['--driver', 'postgres', '--database-url', server.connectionString];
      }
      const log = join(dir, 'signals');
      const stop = join(dir, 'stop');
      const tool = start([...place, 'dies', '--', ...trapping(log, stop, ['TERM', 'HUP'])]);
      const command = readyPid(await tool.waitFor('ready'));
      orphans.add(command);
      t.like(await exclusive([...place, '-n', 'dies', '--', 'true']), { code: 1 }, 'held');

      process.kill(tool.child.pid!, death === 'SIGKILL' ? 'SIGKILL' : 34);
      await tool.exited;
      const second = await secondRun(place, 'dies', command);
      t.like(second, { code: 0, stdout: 'alone\n' }, 'the second copy ran only once the first command had ended');
      t.false(running(command));
      t.false(existsSync(log), 'the command was not asked to stop by a signal it could trap: it was killed');
    });
  }
}

/** Processes whose command line mentions `marker`. */
function processesMentioning(marker: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

// Node only: under Bun, 2 processes of 20 were left behind once in CI (README, Bun and Deno; cause not found).
nodeOnly('portable: a tool killed with kill -9 just as it starts its command leaves nothing running (20 tries)', async (t) => {
  // The window: from starting the command until the guard knows its pid. The
  // command waits behind a gate until then, so a tool killed in it runs nothing.
  const dir = lockDir();
  const marker = join(dir, 'started-by-a-killed-tool');
  for (let i = 0; i < 20; i++) {
    const tool = start(['--driver', 'portable', '--dir', dir, `starting-${i}`, '--', 'sh', '-c', 'sleep 300; true', marker]);
    const pid = tool.child.pid!;
    // Killed as soon as the tool has both children (guard, then command), before it can say more.
    while (running(pid) && childrenOf(pid).length < 2) await new Promise((resolve) => setImmediate(resolve));
    process.kill(pid, 'SIGKILL');
    await tool.exited;
  }
  const deadline = Date.now() + 5000; // the guard's kill, or the gate's exit, takes a moment
  while (processesMentioning(marker).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  const left = processesMentioning(marker);
  left.forEach((pid) => orphans.add(pid));
  t.deepEqual(left, [], 'a command outlived the tool that was killed while starting it');
  for (let i = 0; i < 20; i++)
    t.like(await exclusive(['--driver', 'portable', '--dir', dir, '-n', `starting-${i}`, '--', 'true']), { code: 0 });
});

// Node only: in Deno, and once in Bun, the second copy intermittently ran before the command was stopped (README, Bun and Deno; cause not found).
nodeOnly('posix: a tool killed while its command runs with descriptor 3 closed never leaves that command running unlocked', async (t) => {
  // sudo (closefrom), daemons and many others close every descriptor above 2:
  // the lock descriptor the command was handed then no longer holds the lock.
  const dir = lockDir();
  const place = ['--driver', 'posix', '--dir', dir];
  const tool = start([...place, 'closed', '--', 'sh', '-c', 'exec 3>&-; echo ready $$; exec sleep 300']);
  const command = readyPid(await tool.waitFor('ready'));
  orphans.add(command);
  t.false(openFiles(command).includes(lockFile(dir, 'closed')), 'the command closed the lock descriptor');
  // The guard slow to act on the tool's death (a loaded machine): stopped until the second copy has tried.
  const guard = childrenOf(tool.child.pid!).find((pid) => pid !== command)!;
  orphans.add(guard);
  process.kill(guard, 'SIGSTOP');
  tool.child.kill('SIGKILL');
  await tool.exited;
  const second = startSecondRun(place, 'closed', command);
  // Were the lock free now, the second copy would run and end meanwhile; it must wait for the guard instead.
  await Promise.race([second.exited, sleep(3_000)]);
  process.kill(guard, 'SIGCONT');
  t.like(await second.done, { code: 0, stdout: 'alone\n' }, 'the second copy ran only once the first command had ended');
  t.false(running(command));
});

cliTest('every signal that would end the tool is forwarded once, and the tool lives on with the lock', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'signals');
  const stop = join(dir, 'stop');
  // Bun cannot listen for SIGPWR and SIGSTKFLT (README, runtimes): there the tool cannot forward them.
  const names = ['ALRM', 'VTALRM', 'PROF', 'IO', 'PWR', 'STKFLT', 'USR1', 'USR2'].filter(
    (name) => RUNTIME !== 'bun' || !['PWR', 'STKFLT'].includes(name)
  );
  const tool = start(['--dir', dir, 'fwd', '--', ...trapping(log, stop, names)]);
  await tool.waitFor('ready');
  for (const name of names) {
    tool.child.kill(`SIG${name}` as NodeJS.Signals);
    while (
      !(existsSync(log) && readFileSync(log, 'utf8').includes(`${name}\n`)) &&
      tool.child.exitCode === null &&
      tool.child.signalCode === null
    )
      await sleep(10);
    t.is(tool.child.signalCode, null, `the tool survived SIG${name}`);
    if (tool.child.signalCode !== null) return;
  }
  t.like(await exclusive(['--dir', dir, '-n', 'fwd', '--', 'true']), { code: 1 }, 'still held');
  writeFileSync(stop, '');
  t.like(await tool.done, { code: 0, signal: null });
  t.is(readFileSync(log, 'utf8'), names.map((name) => `${name}\n`).join(''), 'each once, in order');
});

// The command counting deliveries is a Node script (`record`): a shell's trap
// runs once for two deliveries that arrive before it runs, hiding a duplicate.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGALRM'] as const) {
  cliTest(`a ${signal} sent to the whole process group (kill -- -PGID) reaches the command once`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'signals');
    const tool = start(['--dir', dir, 'group', '--', ...node('record', log, '0')], { detached: true });
    await tool.waitFor('ready');
    process.kill(-tool.child.pid!, signal);
    t.like(await tool.done, { code: 0, signal: null });
    t.is(readFileSync(log, 'utf8'), `${signal}\n`);
  });
}

// Node resets ignored signals before the tool's JavaScript runs, so they are
// kept for the command the way docs/cli.md says: ignored after `--`.
cliTest(
  'a signal ignored after -- (sh -c "trap \'\' INT; exec cmd") stays ignored: a group SIGINT leaves the command running',
  async (t) => {
    const dir = lockDir();
    const stop = join(dir, 'stop');
    const wait = `while [ ! -e ${stop} ]; do sleep 0.05; done; echo done`;
    const tool = start(['--dir', dir, 'ignored', '--', 'sh', '-c', `trap '' INT; exec sh -c 'echo ready; ${wait}'`], { detached: true });
    await tool.waitFor('ready');
    process.kill(-tool.child.pid!, 'SIGINT');
    await sleep(300);
    t.like(await exclusive(['--dir', dir, '-n', 'ignored', '--', 'true']), { code: 1 }, 'still running, still held');
    writeFileSync(stop, '');
    t.like(await tool.done, { code: 0, signal: null });
  }
);

/** Resolves once `file` has `count` lines, or after `ms`. */
async function lines(file: string, count: number, ms: number): Promise<void> {
  for (const end = performance.now() + ms; performance.now() < end; await sleep(10)) {
    if (existsSync(file) && readFileSync(file, 'utf8').split('\n').length > count) return;
  }
}

for (const driver of ['posix', 'portable'] as const) {
  for (const name of ['USR1', 'TERM', 'INT']) {
    cliTest(
      `${driver}: a SIG${name} sent to the tool's pid soon after one sent to its group is forwarded, not taken for the group's`,
      async (t) => {
        const dir = lockDir();
        const log = join(dir, 'signals');
        const stop = join(dir, 'stop');
        const tool = start(['--driver', driver, '--dir', dir, 'soon', '--', ...trapping(log, stop, [name])], { detached: true });
        await tool.waitFor('ready');
        const signal = `SIG${name}` as NodeJS.Signals;
        process.kill(-tool.child.pid!, signal); // the command gets this one directly
        await lines(log, 1, 10_000);
        await sleep(300);
        tool.child.kill(signal); // this one only through the tool
        await lines(log, 2, 5000);
        await sleep(300); // a third (duplicate) delivery would be logged by now
        writeFileSync(stop, '');
        t.like(await tool.done, { code: 0, signal: null });
        t.is(readFileSync(log, 'utf8'), `${name}\n${name}\n`);
      }
    );
  }
}

// timeout(1) preempted between its two kill(2) calls on a loaded machine (seen in CI: the command got SIGTERM twice).
cliTest('a signal sent to the tool, then to its group 50 ms later (a preempted timeout(1)), reaches the command once', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'signals');
  const tool = start(['--dir', dir, 'preempted', '--', ...node('record', log, '0')], { detached: true });
  await tool.waitFor('ready');
  tool.child.kill('SIGTERM');
  await sleep(50);
  process.kill(-tool.child.pid!, 'SIGTERM');
  // The command exits 300 ms after its first signal (a second one is logged by then), and the tool exits like it.
  t.like(await tool.done, { code: 0, signal: null });
  t.is(readFileSync(log, 'utf8'), 'SIGTERM\n');
});

cliTest('timeout(1) signals the command once (it signals the tool, then its process group)', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'signals');
  const ready = join(dir, 'ready');
  const tool = launch('timeout', ['-s', 'TERM', '600', bin, '--dir', dir, 'timed', '--', ...node('record', log, '0', ready)]);
  while (!existsSync(ready)) await sleep(10);
  // SIGALRM is timeout(1)'s own timer signal: it times out now, whatever the machine's load did to the start-up.
  tool.child.kill('SIGALRM');
  t.like(await tool.done, { code: 124 }, 'timeout reports that it timed out');
  t.is(readFileSync(log, 'utf8'), 'SIGTERM\n');
});

cliTest('kill %1 at a terminal (an interactive shell with job control) signals the command once', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'signals');
  const ready = join(dir, 'ready');
  const tty = launch('script', ['-qec', 'bash --norc --noprofile -i', '/dev/null'], { keepStdin: true });
  tty.child.stdin!.write(`${bin} --dir ${dir} job -- node ${CHILD} record ${log} 0 ${ready} &\n`);
  while (!existsSync(ready)) await sleep(10); // (its "ready" would be found in the echo of the line typed)
  tty.child.stdin!.write('kill %1; wait; exit\n');
  await tty.done;
  t.is(readFileSync(log, 'utf8'), 'SIGTERM\n');
});

// ---------------------------------------------------------------- status

cliTest('status lists held and free locks as a table, the command being the child command line', async (t) => {
  const dir = lockDir();
  const before = Date.now();
  const name = 'db/nightly backup';
  const tool = start(['--dir', dir, name, '--', ...node('hold')]);
  await tool.waitFor('ready');
  writeFileSync(lockFile(dir, 'beta'), ''); // a free lock file left behind (as after a kill -9)
  const table = await exclusive(['--dir', dir, 'status']);
  t.is(table.code, 0);
  t.is(table.stderr, '');
  const lines = table.stdout.split('\n');
  t.is(lines.length, 4);
  t.is(lines[3], '');
  t.deepEqual(
    lines.map((line) => line.split(/ {2,}/)),
    [
      ['NAME', 'STATE', 'PID', 'HOST', 'SINCE', 'MODE', 'COMMAND'],
      ['beta', 'free', '-', '-', '-', '-', '-'],
      [name, 'held', String(tool.child.pid), hostname(), lines[2].split(/ {2,}/)[4], 'exclusive', `node ${CHILD} hold`],
      [''],
    ]
  );
  for (const column of ['STATE', 'PID', 'HOST', 'SINCE', 'MODE', 'COMMAND']) {
    t.is(
      lines[2].indexOf(lines[2].split(/ {2,}/)[['STATE', 'PID', 'HOST', 'SINCE', 'MODE', 'COMMAND'].indexOf(column) + 1]),
      lines[0].indexOf(column),
      `${column} aligned`
    );
  }
  const since = Date.parse(lines[2].split(/ {2,}/)[4]);
  t.true(since >= Math.floor(before / 1000) * 1000 && since <= Date.now(), lines[2]);
  tool.child.kill('SIGTERM');
  await tool.done;
});

cliTest('status --json gives the same facts; with a name, one object and exit 1 held / 0 free', async (t) => {
  const dir = lockDir();
  const before = Date.now();
  const tool = start(['--dir', dir, 'alpha', '--', ...node('hold', '600000', 'it\'s "quoted"')]);
  await tool.waitFor('ready');
  writeFileSync(lockFile(dir, 'beta'), '');
  const lockfile = lockFile(dir, 'alpha');
  const all = await exclusive(['--dir', dir, 'status', '--json']);
  t.is(all.code, 0);
  const rows = JSON.parse(all.stdout) as Array<Record<string, unknown>>;
  const alpha = {
    name: 'alpha',
    state: 'held',
    pid: tool.child.pid,
    command: `node ${CHILD} hold 600000 'it'\\''s "quoted"'`,
    host: hostname(),
    since: rows[0].since,
    lockfile,
    driver: 'posix',
    mode: 'exclusive',
    holders: [
      {
        pid: tool.child.pid,
        mode: 'exclusive',
        limit: null,
        slot: null,
        command: `node ${CHILD} hold 600000 'it'\\''s "quoted"'`,
        host: hostname(),
        since: rows[0].since,
      },
    ],
  };
  const beta = {
    name: 'beta',
    state: 'free',
    pid: null,
    command: null,
    host: null,
    since: null,
    lockfile: lockFile(dir, 'beta'),
    driver: 'posix',
  };
  t.deepEqual(rows, [alpha, { ...beta, mode: null, holders: [] }]);
  const since = Date.parse(rows[0].since as string);
  t.true(since >= before && since <= Date.now());

  const one = await exclusive(['--dir', dir, 'status', 'alpha', '--json']);
  t.is(one.code, 1);
  t.deepEqual(JSON.parse(one.stdout), alpha);
  t.like(await exclusive(['--dir', dir, 'status', 'beta', '--json']), { code: 0 });
  const unknown = await exclusive(['--dir', dir, 'status', 'never-used']);
  t.is(unknown.code, 0);
  t.deepEqual(unknown.stdout.split('\n')[1].split(/ {2,}/), ['never-used', 'free', '-', '-', '-', '-', '-']);
  tool.child.kill('SIGTERM');
  await tool.done;
  t.like(await exclusive(['--dir', dir, 'status', 'alpha']), { code: 0 });
});

cliTest('status of an empty directory says where it looked; EXCLUSIVE_PROCESS_DIR is the default directory', async (t) => {
  const dir = lockDir();
  t.deepEqual(await exclusive(['status'], { env: { EXCLUSIVE_PROCESS_DIR: dir } }), {
    code: 0,
    signal: null,
    stdout: `No locks in ${dir}.\n`,
    stderr: '',
  });
  t.deepEqual(JSON.parse((await exclusive(['status', '--json', '--dir', dir])).stdout), []);
  const tool = start(['env-dir', '--', ...node('hold')], { env: { EXCLUSIVE_PROCESS_DIR: dir } });
  await tool.waitFor('ready');
  t.like(await exclusive(['--dir', dir, 'status', 'env-dir']), { code: 1 });
  tool.child.kill('SIGTERM');
  await tool.done;
});

cliTest('status of a directory that does not exist reports no locks and does not create it', async (t) => {
  const missing = join(lockDir(), 'typo');
  t.deepEqual(await exclusive(['status', '--dir', missing]), { code: 0, signal: null, stdout: `No locks in ${missing}.\n`, stderr: '' });
  t.like(await exclusive(['status', '--dir', missing, 'job']), { code: 0 });
  t.false(existsSync(missing));
  t.like(await exclusive(['--dir', join(missing, 'sub'), 'job', '--', 'true']), { code: 0 }, 'taking a lock creates it');
  t.true(existsSync(join(missing, 'sub')));
});

// ---------------------------------------------------------------- other drivers

cliTest('--driver portable: conflict, status with the command, forwarding', async (t) => {
  const dir = lockDir();
  const place = ['--driver', 'portable', '--dir', dir];
  const tool = start([...place, 'p', '--', ...node('hold')]);
  await tool.waitFor('ready');
  t.deepEqual(await exclusive([...place, 'p', '--', 'true']), {
    code: 1,
    signal: null,
    stdout: '',
    stderr: conflictMessage('p', tool.child.pid!),
  });
  const status = await exclusive([...place, 'status', 'p', '--json']);
  t.is(status.code, 1);
  t.like(JSON.parse(status.stdout), { name: 'p', state: 'held', pid: tool.child.pid, command: `node ${CHILD} hold`, driver: 'portable' });
  tool.child.kill('SIGTERM');
  t.like(await tool.done, { signal: 'SIGTERM' });
  t.like(await exclusive([...place, 'status', 'p']), { code: 0 });
  t.like(await exclusive([...place, '-n', 'p', '--', 'true']), { code: 0 });
});

cliTest('--driver postgres --database-url: one holder across the server, status by name', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.stop());
  const place = ['--driver', 'postgres', '--database-url', server.connectionString];
  const tool = start([...place, 'pg-job', '--', ...node('hold')]);
  await tool.waitFor('ready');
  t.deepEqual(await exclusive([...place, '-E', '75', 'pg-job', '--', 'true']), {
    code: 75,
    signal: null,
    stdout: '',
    stderr: conflictMessage('pg-job', tool.child.pid!),
  });
  const status = await exclusive([...place, 'status', 'pg-job', '--json']);
  t.is(status.code, 1);
  t.like(JSON.parse(status.stdout), { name: 'pg-job', state: 'held', pid: tool.child.pid, host: hostname(), driver: 'postgres' });
  t.deepEqual(await exclusive([...place, 'status']), {
    code: 125,
    signal: null,
    stdout: '',
    stderr: 'exclusive: The postgres driver cannot list its locks; ask about one: exclusive status <name>\n',
  });
  tool.child.kill('SIGTERM');
  t.like(await tool.done, { signal: 'SIGTERM' });
  t.like(await exclusive([...place, 'status', 'pg-job']), { code: 0 });
  t.like(await exclusive([...place, '-w', '5', 'pg-job', '--', 'true']), { code: 0, stderr: '' });
});

cliTest(
  '--driver redis --redis-url: one holder across the server, status by name and a list; a lost lock stops the command with 125',
  async (t) => {
    const server = await startRedis();
    t.teardown(() => server.stop());
    const place = ['--driver', 'redis', '--redis-url', server.url];
    const tool = start([...place, 'rd-job', '--', ...node('hold')]);
    await tool.waitFor('ready');
    t.deepEqual(await exclusive([...place, '-E', '75', 'rd-job', '--', 'true']), {
      code: 75,
      signal: null,
      stdout: '',
      stderr: conflictMessage('rd-job', tool.child.pid!),
    });
    const status = await exclusive([...place, 'status', 'rd-job', '--json']);
    t.is(status.code, 1);
    t.like(JSON.parse(status.stdout), { name: 'rd-job', state: 'held', pid: tool.child.pid, host: hostname(), driver: 'redis' });
    const list = await exclusive([...place, 'status', '--json']);
    t.is(list.code, 0, list.stderr);
    t.true(
      (JSON.parse(list.stdout) as Array<{ name: string }>).some((lock) => lock.name === 'rd-job'),
      list.stdout
    );
    // What a network cut would do: the server drops the holder's connection; the tool stops the command.
    const client = new Redis(server.url);
    await client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    client.disconnect();
    const result = await tool.done;
    t.is(result.code, 125);
    t.regex(result.stderr, /^exclusive: The lock 'rd-job' was lost: .* Stopping the command \(SIGTERM, then SIGKILL after 5 s\)\.\n$/);
    t.like(await exclusive([...place, 'status', 'rd-job']), { code: 0 });
    t.like(await exclusive([...place, '-w', '5', 'rd-job', '--', 'true']), { code: 0, stderr: '' });
  }
);

cliTest('--driver postgres: a lock lost while the command runs stops the command and fails with 125', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.stop());
  const place = ['--driver', 'postgres', '--database-url', server.connectionString];
  const record = join(lockDir(), 'signals');
  const tool = start([...place, 'pg-lost', '--', ...node('record', record, '0')]);
  await tool.waitFor('ready');
  const client = new Client({ connectionString: server.connectionString });
  await client.connect();
  try {
    // What a network partition or an idle-session timeout would do: the server ends the holder's session.
    await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'exclusive-process%'");
  } finally {
    await client.end();
  }
  const result = await tool.done;
  t.is(result.code, 125);
  t.regex(result.stderr, /^exclusive: The lock 'pg-lost' was lost: .* Stopping the command \(SIGTERM, then SIGKILL after 5 s\)\.\n$/);
  t.is(readFileSync(record, 'utf8'), 'SIGTERM\n');
});

cliTest(
  '--driver postgres: a command that ignores the SIGTERM of a lost lock is killed, and nothing is said to a closed stderr',
  async (t) => {
    const server = await startPostgres();
    t.teardown(() => server.stop());
    const place = ['--driver', 'postgres', '--database-url', server.connectionString];
    const tool = start([...place, 'pg-stubborn', '--', 'sh', '-c', 'trap "" TERM; echo ready $$; while :; do sleep 1; done']);
    const command = readyPid(await tool.waitFor('ready'));
    orphans.add(command);
    tool.child.stderr!.destroy(); // whoever read the tool's stderr is gone: writing to it fails with EPIPE
    const client = new Client({ connectionString: server.connectionString });
    await client.connect();
    try {
      await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'exclusive-process%'");
    } finally {
      await client.end();
    }
    await tool.exited;
    t.is(tool.child.exitCode, 125, 'the tool reports the loss by its exit code, having stopped the command');
    t.throws(() => process.kill(command, 0), { code: 'ESRCH' }, 'the command was killed');
  }
);

cliTest('--name gives a lock name that starts with a dash, to a run and to status', async (t) => {
  const dir = lockDir();
  const tool = start(['--dir', dir, '--name', '-x', '--', ...node('hold')]);
  await tool.waitFor('ready');
  t.deepEqual(await exclusive(['--dir', dir, '--name=-x', '--', 'true']), {
    code: 1,
    signal: null,
    stdout: '',
    stderr: conflictMessage('-x', tool.child.pid!),
  });
  t.like(JSON.parse((await exclusive(['--dir', dir, 'status', '--name', '-x', '--json'])).stdout), {
    name: '-x',
    state: 'held',
    pid: tool.child.pid,
  });
  t.true(existsSync(lockFile(dir, '-x')));
  tool.child.kill('SIGTERM');
  await tool.done;
  t.like(await exclusive(['--dir', dir, '--name', '-x', '--', 'true']), { code: 0 });
});

// ---------------------------------------------------------------- usage errors

const usageErrors: Array<[string[], string]> = [
  [['--frobnicate', 'x', '--', 'true'], "unknown option '--frobnicate'"],
  [['-x', 'job', '--', 'true'], "unknown option '-x'"],
  [['--wiat', '5', 'job', '--', 'true'], "unknown option '--wiat': did you mean '--wait'?"],
  [['--timeout', '5', 'job', '--', 'true'], "unknown option '--timeout': did you mean '--wait'?"],
  [['--Quiet', 'job', '--', 'true'], "unknown option '--Quiet': did you mean '--quiet'?"],
  [['--nb', 'job', '--', 'true'], "unknown option '--nb': did you mean '--nonblock'?"],
  [['status', '-v'], "option '-v' does not apply to 'status'"],
  [['job', 'sleep', '1'], "missing '--' before the command (usage: exclusive [options] <name> -- <command> [args...])"],
  [[], 'missing the lock name and the command'],
  // Bun drops a `--` that comes first after the script, so the tool there sees `exclusive true`.
  [
    ['--', 'true'],
    RUNTIME === 'bun'
      ? "missing '--' before the command (usage: exclusive [options] <name> -- <command> [args...])"
      : "missing the lock name before '--'",
  ],
  [['job', '--'], "missing the command after '--'"],
  [['a', 'b', '--', 'true'], `expected one lock name before '--', got 2: "a" "b"`],
  [['-w', 'abc', 'job', '--', 'true'], `option '-w' needs a number of seconds (0 waits for ever), got "abc"`],
  [['--wait=-1', 'job', '--', 'true'], `option '--wait' needs a number of seconds (0 waits for ever), got "-1"`],
  [['-w', 'job', '--', 'true'], `option '-w' needs a number of seconds (0 waits for ever), got "job"`],
  [['job', '-w', '--', 'true'], "option '-w' needs a value"],
  [['-E', 'x', 'job', '--', 'true'], `option '-E' needs an exit code from 0 to 255, got "x"`],
  [['-E', '256', 'job', '--', 'true'], `option '-E' needs an exit code from 0 to 255, got "256"`],
  [['--driver', 'nfs', 'job', '--', 'true'], `option '--driver' must be one of posix, windows, portable, postgres, redis, got "nfs"`],
  [['--database-url', 'postgres://h/d', 'job', '--', 'true'], "option '--database-url' needs '--driver postgres'"],
  [['--driver', 'postgres', '--dir', '/tmp', 'job', '--', 'true'], "option '--dir' does not apply to the postgres driver"],
  [['--quiet=yes', 'job', '--', 'true'], "option '--quiet' takes no value"],
  [['--json', 'job', '--', 'true'], "option '--json' does not apply to a run (it is a status option)"],
  [['status', '-w', '5'], "option '-w' does not apply to 'status'"],
  [['status', 'a', 'b'], `'status' takes at most one lock name, got 2: "a" "b"`],
  [['', '--', 'true'], 'the lock name must not be empty'],
  [['job', '--', ''], "the command after '--' is empty"],
  [
    ['--driver', 'postgres', '--database-url', 'bogus', 'job', '--', 'true'],
    "option '--database-url' must be a URL such as 'postgres://user:password@host:5432/database' (or a Unix socket directory)",
  ],
  [['--driver', 'postgres', '--database-url', 'postgres://h:99999/d', 'status'], "option '--database-url' cannot be parsed: Invalid URL"],
  [['--name', 'a', 'b', '--', 'true'], `give the lock name once: option '--name' and "b"`],
  [['--name=', '--', 'true'], 'the lock name must not be empty'],
  [['status', '--name', 'a', 'b'], `give the lock name once: option '--name' and "b"`],
];

cliTest('bad command lines exit 2 with a clear message and a pointer to --help', async (t) => {
  const results = await Promise.all(usageErrors.map(([args]) => exclusive(args)));
  results.forEach((result, i) => {
    t.deepEqual(
      result,
      { code: 2, signal: null, stdout: '', stderr: `exclusive: ${usageErrors[i][1]}\n${TRY_HELP}` },
      usageErrors[i][0].join(' ')
    );
  });
});

cliTest('a driver that cannot run here, or an unusable directory, exits 125', async (t) => {
  const windows = await exclusive(['--driver', 'windows', 'job', '--', 'true']);
  t.deepEqual(windows, { code: 125, signal: null, stdout: '', stderr: 'exclusive: The windows driver needs Windows; this is linux.\n' });
  const file = join(lockDir(), 'a-file');
  writeFileSync(file, '');
  const result = await exclusive(['--dir', file, 'job', '--', 'true']);
  t.is(result.code, 125);
  t.is(result.stderr, `exclusive: The lock directory ${file} is not a directory: point --dir or EXCLUSIVE_PROCESS_DIR at a directory.\n`);
  // A directory that exists but takes no files says so, and names the flag, not the API option.
  t.deepEqual(await exclusive(['--dir', '/proc', 'job', '--', 'true']), {
    code: 125,
    signal: null,
    stdout: '',
    stderr:
      'exclusive: The lock directory /proc does not accept new files (creating exclusive-process.job.lock there fails with ENOENT): ' +
      'it is on a virtual file system such as /proc or /sys. Choose a directory on an ordinary file system (such as /run/lock or /tmp) with --dir or EXCLUSIVE_PROCESS_DIR.\n',
  });
});

// Node only: the failure is injected through NODE_OPTIONS, which Bun and Deno do not read.
nodeOnly("a Node error with an ERR_ code is not taken for one of the tool's: it is reported with its stack, exit 125", async (t) => {
  // Preloaded into the tool: starting the command `true` passes spawn() an
  // argument holding a NUL byte, so Node itself throws (TypeError
  // [ERR_INVALID_ARG_VALUE]) as an unexpected failure of the tool would.
  const preload = join(root, 'nul-argument.cjs');
  writeFileSync(
    preload,
    `const childProcess = require('node:child_process');
const spawn = childProcess.spawn;
childProcess.spawn = (file, args, options) => spawn(file, args.map((a) => (a === 'true' ? 'a\\0b' : a)), options);
`
  );
  const result = await exclusive(['--dir', lockDir(), 'node-error', '--', 'true'], { env: { NODE_OPTIONS: `--require ${preload}` } });
  t.is(result.code, 125, result.stderr);
  t.is(result.stdout, '');
  // Not `exclusive: The argument 'args[0]' must be...` alone, as the tool's own errors (whose messages name the fix) are said.
  t.true(
    result.stderr.startsWith("exclusive: TypeError [ERR_INVALID_ARG_VALUE]: The argument 'args[2]' must be a string without null bytes."),
    result.stderr
  );
  t.regex(result.stderr, /\n {4}at .*spawn/, 'with its stack');
});

// ---------------------------------------------------------------- verbose

/** `-v` lines with their durations replaced by `N`, so they compare exactly. */
function verboseLines(stderr: string): string {
  return stderr.replace(/\b\d+(\.\d+)? s\b/g, 'N s');
}

cliTest('-v says which file it locks, that it waits and for whom, and how long it took', async (t) => {
  const dir = lockDir();
  const file = lockFile(dir, 'verbose');
  const free = await exclusive(['-v', '--dir', dir, 'verbose', '--', 'sh', '-c', 'echo out; exit 3']);
  t.deepEqual(
    { ...free, stderr: verboseLines(free.stderr) },
    {
      code: 3,
      signal: null,
      stdout: 'out\n',
      stderr:
        `exclusive: lock 'verbose': ${file} (posix driver)\n` +
        "exclusive: got the lock after N s; running sh -c 'echo out; exit 3'\n" +
        'exclusive: the command exited with code 3 after N s; released the lock\n',
    }
  );

  const holder = await holdLock(dir, 'verbose');
  // Waiting, then getting it when the holder ends.
  const waiter = start(['--verbose', '--dir', dir, '-w', '600', 'verbose', '--', 'true']);
  await hasOpen(waiter.child.pid!, file);
  await sleep(300);
  await holder.stop();
  const waited = await waiter.done;
  t.is(waited.code, 0, waited.stderr);
  t.is(
    verboseLines(waited.stderr),
    `exclusive: lock 'verbose': ${file} (posix driver)\n` +
      `exclusive: held by pid ${holder.pid}; waiting up to N s (10 min)\n` +
      'exclusive: got the lock after N s; running true\n' +
      'exclusive: the command exited with code 0 after N s; released the lock\n'
  );
  t.true(Number(/got the lock after ([\d.]+) s/.exec(waited.stderr)![1]) >= 0.3, waited.stderr);

  // Giving up: the wait's end, then the conflict line; -n says nothing about waiting.
  const second = await holdLock(dir, 'verbose');
  const gaveUp = await exclusive(['-v', '--dir', dir, '-w', '0.2', 'verbose', '--', 'true']);
  t.deepEqual(
    { ...gaveUp, stderr: verboseLines(gaveUp.stderr).replace(/ after \d+ ms: /, ' after N ms: ') },
    {
      code: 1,
      signal: null,
      stdout: '',
      stderr:
        `exclusive: lock 'verbose': ${file} (posix driver)\n` +
        `exclusive: held by pid ${second.pid}; waiting up to N s\n` +
        'exclusive: gave up waiting after N s\n' +
        timedOutMessage(dir, 'verbose', second.pid, 'N ms'),
    }
  );
  t.deepEqual(await exclusive(['-v', '--dir', dir, 'verbose', '--', 'true']), {
    code: 1,
    signal: null,
    stdout: '',
    stderr: `exclusive: lock 'verbose': ${file} (posix driver)\n${conflictMessage('verbose', second.pid)}`,
  });
  await second.stop();
  // Without -v, nothing but the command's output.
  t.deepEqual(await exclusive(['--dir', dir, 'verbose', '--', 'true']), { code: 0, signal: null, stdout: '', stderr: '' });
});

// ---------------------------------------------------------------- parsing and recording (in-process)

cliTest('parseArgs: options in any order, grouped short flags, inline values', (t) => {
  const run = (args: string[]): RunRequest => parseArgs(args) as RunRequest;
  t.deepEqual(parseArgs(['-nqw', '2.5', '--dir=/l', '--driver', 'portable', 'job', '-E75', '--', 'cmd', '-n', '--', 'x']), {
    kind: 'run',
    name: 'job',
    command: ['cmd', '-n', '--', 'x'],
    waitMs: 2500,
    conflictExitCode: 75,
    quiet: true,
    verbose: false,
    dir: '/l',
    driver: 'portable',
    databaseUrl: undefined,
    redisUrl: undefined,
    mode: 'exclusive',
    limit: 1,
  });
  t.like(run(['job', '--', 'c']), {
    waitMs: 0,
    conflictExitCode: 1,
    quiet: false,
    verbose: false,
    dir: undefined,
    driver: undefined,
    databaseUrl: undefined,
    redisUrl: undefined,
  });
  t.like(run(['--driver=postgres', '--database-url', 'postgres://h/d', 'job', '--', 'c']), {
    driver: 'postgres',
    databaseUrl: 'postgres://h/d',
  });
  t.like(run(['--driver=redis', '--redis-url', 'redis://h:6379', 'job', '--', 'c']), { driver: 'redis', redisUrl: 'redis://h:6379' });
  t.throws(() => run(['--redis-url', 'redis://h', 'job', '--', 'c']), {
    instanceOf: UsageError,
    message: "option '--redis-url' needs '--driver redis'",
  });
  t.throws(() => run(['--driver', 'redis', '--dir', '/x', 'job', '--', 'c']), {
    instanceOf: UsageError,
    message: "option '--dir' does not apply to the redis driver",
  });
  t.is(run(['-w', '0', 'j', '--', 'c']).waitMs, Infinity);
  t.is(run(['-w', '.5', 'j', '--', 'c']).waitMs, 500);
  t.like(run(['-qv', 'j', '--', 'c']), { quiet: true, verbose: true });
  t.like(run(['--verbose', 'j', '--', 'c']), { verbose: true });
  t.is(run(['-w', '3', '-n', 'j', '--', 'c']).waitMs, 0);
  t.deepEqual(parseArgs(['status', '--', 'c']), {
    kind: 'run',
    name: 'status',
    command: ['c'],
    waitMs: 0,
    conflictExitCode: 1,
    quiet: false,
    verbose: false,
    dir: undefined,
    driver: undefined,
    databaseUrl: undefined,
    redisUrl: undefined,
    mode: 'exclusive',
    limit: 1,
  });
  t.deepEqual(parseArgs(['status']), {
    kind: 'status',
    name: undefined,
    json: false,
    dir: undefined,
    driver: undefined,
    databaseUrl: undefined,
    redisUrl: undefined,
  });
  t.deepEqual(parseArgs(['--json', 'status', 'x']), {
    kind: 'status',
    name: 'x',
    json: true,
    dir: undefined,
    driver: undefined,
    databaseUrl: undefined,
    redisUrl: undefined,
  });
  t.deepEqual(parseArgs(['job', '--help', '--', 'c']), { kind: 'help' });
  t.deepEqual(parseArgs(['job', '--', 'c', '--help']), {
    kind: 'run',
    name: 'job',
    command: ['c', '--help'],
    waitMs: 0,
    conflictExitCode: 1,
    quiet: false,
    verbose: false,
    dir: undefined,
    driver: undefined,
    databaseUrl: undefined,
    redisUrl: undefined,
    mode: 'exclusive',
    limit: 1,
  });
  t.throws(() => parseArgs(['--frob', '--help']), { instanceOf: UsageError, message: "unknown option '--frob'" });
  t.throws(() => parseArgs(['-w', '2147484', 'j', '--', 'c']), {
    instanceOf: UsageError,
    message: "option '-w' must be at most 2147483 seconds (use 0 to wait for ever), got 2147484",
  });
});

cliTest('displayCommand quotes what a shell would split and caps the length', (t) => {
  t.is(displayCommand(['pg_dump', '-Fc', 'my db', "it's", 'a=b,c:d/e.f@g%h+i']), `pg_dump -Fc 'my db' 'it'\\''s' a=b,c:d/e.f@g%h+i`);
  t.is(displayCommand(['']), "''");
  const long = displayCommand(['x'.repeat(400)]);
  t.is(long.length, 300);
  t.true(long.endsWith('…'));
});
