// Locks shared by several users of one host, run as real users (root,
// `nobody`, and `exclusive-test`, created here if missing) from a
// world-readable build (so this works from a checkout others cannot read),
// with real mounts in private mount namespaces for the default directory.
import test, { type ExecutionContext } from 'ava';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockFileName } from '../src/drivers/file/path.js';
import { privateMounts } from './helpers/namespace.js';
import { listedLocks, lockDir, startArgv, type Finished, type Started } from './helpers/processes.js';
import { asUser, buildForUsers, ensureUser, uidOf, type UserBuild } from './helpers/run-as.js';

const isRoot = process.getuid?.() === 0;
const OTHER = 'exclusive-test';
const HOLD = 'test/fixtures/hold.ts';
const TRY = 'test/fixtures/try-lock.ts';
const HOLDER = 'test/fixtures/holder.ts';
const IDLE = 'test/fixtures/lock-then-idle.ts';
const CLI = 'src/cli.ts';
/** No chosen directory and no TMPDIR unless a test sets them: the default directory is the subject. */
const CLEAN_ENV = { EXCLUSIVE_PROCESS_DIR: undefined, TMPDIR: undefined };

let build: UserBuild | undefined;
const started = new Set<Started>();

test.before(() => {
  if (!isRoot) return;
  ensureUser(OTHER);
  build = buildForUsers([HOLD, TRY, HOLDER, IDLE, CLI]);
});

test.after.always(async () => {
  for (const process of started) if (process.child.exitCode === null && process.child.signalCode === null) await killed(process);
  build?.remove();
});

/** A test that needs root (to act as other users and mount things). */
function rootTest(title: string, fn: (t: ExecutionContext, build: UserBuild) => Promise<void>): void {
  test.serial(title, async (t) => {
    if (!isRoot || build === undefined) return t.pass('needs root to act as other users');
    await fn(t, build);
  });
}

/** Where processes run: a private mount namespace, or this one. */
interface Place {
  start(argv: readonly string[], options?: { user?: string; env?: NodeJS.ProcessEnv; stdin?: 'ignore' | 'pipe' }): Started;
}

const here: Place = {
  start: (argv, { user, env, stdin } = {}) => startArgv(user === undefined ? argv : asUser(user, argv).flat(), { cwd: '/', env, stdin }),
};

function launch(
  place: Place,
  argv: readonly string[],
  user?: string,
  env: NodeJS.ProcessEnv = {},
  stdin: 'ignore' | 'pipe' = 'ignore'
): Started {
  const process = place.start(argv, { user, env: { ...CLEAN_ENV, ...env }, stdin });
  started.add(process);
  return process;
}

/** Starts hold.ts as `user` and resolves with its pid and lock file once it holds the lock. */
async function hold(
  place: Place,
  build: UserBuild,
  user: string | undefined,
  args: string[],
  env?: NodeJS.ProcessEnv
): Promise<{ pid: number; lockfile: string; process: Started }> {
  const process = launch(place, build.argv(HOLD, args), user, env);
  const [, pid, lockfile] = /held (\d+) (\S+)/.exec(await process.waitFor('held'))!;
  return { pid: Number(pid), lockfile, process };
}

async function finish(place: Place, argv: readonly string[], user?: string, env?: NodeJS.ProcessEnv): Promise<Finished> {
  return launch(place, argv, user, env).finished;
}

/** What try-lock.ts reports as `user`. */
async function tryLock(
  place: Place,
  build: UserBuild,
  user: string | undefined,
  args: string[],
  env?: NodeJS.ProcessEnv
): Promise<{ acquired: boolean; holder?: number }> {
  const result = await finish(place, build.argv(TRY, args), user, env);
  if (result.code !== 0) throw new Error(`try-lock as ${user ?? 'root'} failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as { acquired: boolean; holder?: number };
}

/** `holder()` (the library) and `exclusive status <name> --json` (the CLI) as `user`: both must answer, and agree. */
async function askBoth(
  t: ExecutionContext,
  place: Place,
  build: UserBuild,
  user: string | undefined,
  name: string,
  dir: string,
  env?: NodeJS.ProcessEnv,
  driver = ''
): Promise<number | null> {
  const library = await finish(place, build.argv(HOLDER, [name, dir, driver]), user, env);
  t.is(library.code, 0, library.stderr);
  const options = [...(dir === '' ? [] : ['--dir', dir]), ...(driver === '' ? [] : ['--driver', driver])];
  const cli = await finish(place, build.argv(CLI, ['status', name, '--json', ...options]), user, env);
  const seen = JSON.parse(library.stdout) as { held: boolean; pid: number | null };
  const status = JSON.parse(cli.stdout) as { state: string; pid: number | null };
  t.is(cli.code, seen.held ? 1 : 0, cli.stderr);
  t.deepEqual(
    { state: status.state, pid: status.pid },
    { state: seen.held ? 'held' : 'free', pid: seen.pid },
    `status agrees with holder() for ${user ?? 'root'}`
  );
  return seen.pid;
}

function uniqueName(what: string): string {
  return `perms-${what}-${process.pid}-${Date.now()}`;
}

/** A shared lock directory like /tmp: 1777, owned by root. */
function sharedDir(): string {
  const dir = lockDir();
  chmodSync(dir, 0o1777);
  return dir;
}

/** The pid the command really runs as: runuser forks (and would survive a SIGKILL of its child's parent). */
function innermostPid(pid: number): number {
  for (;;) {
    let children: string[];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return pid;
    }
    if (children.length !== 1) return pid;
    pid = Number(children[0]);
  }
}

/** Kills the command itself with SIGKILL (as `kill -9` would), and waits for its end. */
async function killed(process: Started): Promise<void> {
  try {
    globalThis.process.kill(innermostPid(process.child.pid!), 'SIGKILL');
  } catch {
    // Already gone.
  }
  await process.finished;
}

/**
 * Root and `nobody` take `name` with default options, in `place`: each must
 * exclude the other, `nobody` with and without TMPDIR, and both users'
 * holder() and status must agree. Returns the lock file root used.
 */
async function defaultDirectoryExcludes(t: ExecutionContext, place: Place, build: UserBuild, name: string): Promise<string> {
  const privateTmp = join(build.dir, 'private-tmp');
  mkdirSync(privateTmp, { recursive: true });
  chownSync(privateTmp, uidOf('nobody'), 0);
  const withTmp = { TMPDIR: privateTmp };

  const root = await hold(place, build, undefined, [name, '']);
  t.like(await tryLock(place, build, 'nobody', [name, '', '']), { acquired: false, holder: root.pid }, 'nobody');
  t.like(await tryLock(place, build, 'nobody', [name, '', ''], withTmp), { acquired: false, holder: root.pid }, 'nobody with TMPDIR');
  t.like(await tryLock(place, build, undefined, [name, '', ''], withTmp), { acquired: false, holder: root.pid }, 'root with TMPDIR');
  for (const [user, env] of [
    [undefined, {}],
    ['nobody', {}],
    ['nobody', withTmp],
  ] as const) {
    t.is(await askBoth(t, place, build, user, name, '', env), root.pid);
  }
  await killed(root.process);

  // nobody with TMPDIR holds: root, and nobody without TMPDIR (cron), are refused.
  const user = await hold(place, build, 'nobody', [name, ''], withTmp);
  t.is(user.lockfile, root.lockfile, 'one lock file for every user and environment');
  t.like(await tryLock(place, build, 'nobody', [name, '', '']), { acquired: false, holder: user.pid }, 'nobody without TMPDIR');
  t.like(await tryLock(place, build, undefined, [name, '', '']), { acquired: false, holder: user.pid }, 'root');
  t.is(await askBoth(t, place, build, undefined, name, ''), user.pid);
  t.is(await askBoth(t, place, build, 'nobody', name, ''), user.pid);
  await killed(user.process);
  return root.lockfile;
}

rootTest(
  "default directory, /run/lock root's 0755 (Fedora, RHEL, Arch): root and a user, with and without TMPDIR, share one lock in /tmp",
  async (t, build) => {
    const namespace = await privateMounts('mount -t tmpfs -o mode=0755 tmpfs /run/lock');
    const name = uniqueName('0755');
    try {
      const lockfile = await defaultDirectoryExcludes(t, namespace, build, name);
      t.is(lockfile, join('/tmp', lockFileName(name)));
    } finally {
      namespace.close();
      rmSync(join('/tmp', lockFileName(name)), { force: true });
    }
  }
);

rootTest(
  "default directory, Debian's 1777 /run/lock: root and a user, with and without TMPDIR, share one lock there; root's leftover after kill -9 blocks no one",
  async (t, build) => {
    const namespace = await privateMounts('mount -t tmpfs -o mode=1777 tmpfs /run/lock');
    const name = uniqueName('1777');
    try {
      const lockfile = await defaultDirectoryExcludes(t, namespace, build, name);
      t.is(lockfile, join('/run/lock', lockFileName(name)));
      // Root's job killed with -9 leaves its 0644 file: every user may still ask, and take the lock.
      const root = await hold(namespace, build, undefined, [name, '']);
      await killed(root.process);
      t.is(await askBoth(t, namespace, build, 'nobody', name, ''), null);
      t.like(await tryLock(namespace, build, 'nobody', [name, '', '']), { acquired: true });
    } finally {
      namespace.close();
    }
  }
);

rootTest(
  'default directory: a user who may not create files in it gets ERR_LOCK_PERMISSION naming the fix, not a private lock',
  async (t, build) => {
    // /run/lock root's 0755 and /tmp not writable by users: the default is /tmp all the same.
    // The build (in the real /tmp) stays visible at its path through a bind mount.
    const namespace = await privateMounts(
      [
        'mount -t tmpfs -o mode=0755 tmpfs /run/lock',
        'mkdir /run/lock/build',
        `mount --bind ${build.dir} /run/lock/build`,
        'mount -t tmpfs -o mode=0755 tmpfs /tmp',
        `mkdir -p ${build.dir}`,
        `mount --bind /run/lock/build ${build.dir}`,
      ].join(' && ')
    );
    try {
      const result = await namespace.run(build.argv(CLI, [uniqueName('nodir'), '--', 'true']), { user: 'nobody', env: CLEAN_ENV });
      t.is(result.code, 125);
      t.regex(
        result.stderr,
        /No permission for the lock file \/tmp\/exclusive-process\.perms-nodir-\S+\.lock \(EACCES\): this user \(uid 65534\) may not create files in \/tmp\. Make it writable for every user of the lock/
      );
    } finally {
      namespace.close();
    }
  }
);

rootTest("another user's lock file: holder() and status need only read access (a 0644 file, held or left by kill -9)", async (t, build) => {
  const dir = sharedDir();
  const name = uniqueName('ask');
  const root = await hold(here, build, undefined, [name, dir]);
  t.is(statSync(root.lockfile).mode & 0o777, 0o644);
  t.is(await askBoth(t, here, build, 'nobody', name, dir), root.pid);
  await killed(root.process);
  t.true(existsSync(root.lockfile), 'kill -9 leaves the file');
  t.is(await askBoth(t, here, build, 'nobody', name, dir), null);
  t.is(await askBoth(t, here, build, OTHER, name, dir), null);
});

rootTest(
  "in a shared 1777 directory another user's lock file blocks nobody: open by a live process, left by kill -9; -w, -q and -E apply",
  async (t, build) => {
    const dir = sharedDir();
    const name = 'idle'; // lock-then-idle.ts's name
    // A process of OTHER took and released the lock and keeps its file open.
    const idle = launch(here, build.argv(IDLE, [dir, 'exclusive']), OTHER);
    await idle.waitFor('locked');
    const lockfile = join(dir, lockFileName(name));
    t.is(statSync(lockfile).uid, uidOf(OTHER));
    const waited = await finish(here, build.argv(CLI, ['-w', '2', name, '--dir', dir, '--', 'true']), 'nobody');
    t.deepEqual({ code: waited.code, stderr: waited.stderr }, { code: 0, stderr: '' }, 'free for every user');
    await killed(idle);

    // OTHER's holder killed with -9: its file stays, and the lock is free for nobody.
    const other = await hold(here, build, OTHER, [name, dir]);
    const refused = await finish(here, build.argv(CLI, ['-q', '-E', '75', name, '--dir', dir, '--', 'true']), 'nobody');
    t.deepEqual({ code: refused.code, stderr: refused.stderr }, { code: 75, stderr: '' }, 'held by OTHER: -q -E 75');
    await killed(other.process);
    const cron = await finish(here, build.argv(CLI, ['-q', '-E', '75', name, '--dir', dir, '--', 'true']), 'nobody');
    t.deepEqual({ code: cron.code, stderr: cron.stderr }, { code: 0, stderr: '' }, "the README's cron line runs");

    // nobody holds OTHER's file (read-only): OTHER and root are refused, and see nobody's pid.
    const user = await hold(here, build, 'nobody', [name, dir]);
    t.is(user.lockfile, lockfile);
    t.is(statSync(lockfile).uid, uidOf(OTHER), "still OTHER's file");
    t.like(await tryLock(here, build, OTHER, [name, dir, '']), { acquired: false, holder: user.pid });
    const otherRun = await finish(here, build.argv(CLI, ['-q', '-E', '75', name, '--dir', dir, '--', 'true']), OTHER);
    t.is(otherRun.code, 75);
    t.is(await askBoth(t, here, build, OTHER, name, dir), user.pid);
    t.is(await askBoth(t, here, build, undefined, name, dir), user.pid);
    await killed(user.process);
    t.like(await tryLock(here, build, OTHER, [name, dir, '']), { acquired: true });
  }
);

rootTest(
  'a lock file other users may not even read, and a directory they may not write, get ERR_LOCK_PERMISSION naming the path and the fix',
  async (t, build) => {
    const dir = lockDir();
    chmodSync(dir, 0o755);
    const readOnly = await finish(here, build.argv(TRY, ['ro', dir, 'posix']), 'nobody');
    t.is(readOnly.code, 1);
    t.regex(readOnly.stderr, /code: 'ERR_LOCK_PERMISSION'/);
    t.regex(
      readOnly.stderr,
      new RegExp(
        `No permission for the lock file ${dir}/exclusive-process.ro.lock \\(EACCES\\): this user \\(uid 65534\\) may not create files in ${dir}\\. ` +
          'Make it writable for every user of the lock \\(a shared directory should be mode 1777, like /tmp\\), or choose one with the `dir` option or EXCLUSIVE_PROCESS_DIR'
      )
    );
    chmodSync(dir, 0o1777);
    writeFileSync(join(dir, lockFileName('private')), '', { mode: 0o600 });
    const result = await finish(here, build.argv(TRY, ['private', dir, 'posix']), 'nobody');
    t.is(result.code, 1);
    t.regex(result.stderr, /code: 'ERR_LOCK_PERMISSION'/);
    t.regex(
      result.stderr,
      /it belongs to uid 0 and this user \(uid 65534\) may not read it\. Run as uid 0 or root, or have them remove it or make it readable \(chmod a\+r\)/
    );
    // Asking needs no read access: /proc/locks says nobody flocks it.
    t.is(await askBoth(t, here, build, 'nobody', 'private', dir), null);
  }
);

/** The argv that runs `argv` under umask 077, as a user with a private umask would. */
function underUmask077(argv: readonly string[]): string[] {
  return ['/bin/sh', '-c', 'umask 077 && exec "$@"', 'sh', ...argv];
}

for (const [holding, asking] of [
  ['posix', 'portable'],
  ['portable', 'posix'],
] as const) {
  rootTest(`a ${holding} holder under umask 077 makes its file 0644 and excludes another user's ${asking} process`, async (t, build) => {
    const dir = sharedDir();
    const name = uniqueName(`umask-${holding}`);
    const holder = launch(here, underUmask077(build.argv(HOLD, [name, dir, holding])));
    const [, pid, lockfile] = /held (\d+) (\S+)/.exec(await holder.waitFor('held'))!;
    t.is(statSync(lockfile).mode & 0o777, 0o644, 'the umask does not make the file private');
    t.like(await tryLock(here, build, 'nobody', [name, dir, asking]), { acquired: false, holder: Number(pid) });
    t.is(await askBoth(t, here, build, 'nobody', name, dir, {}, asking), Number(pid));
    const cli = await finish(here, build.argv(CLI, ['--dir', dir, '--driver', asking, name, '--', 'echo', 'RAN']), 'nobody');
    t.is(cli.stdout, '', 'the command did not run');
    t.not(cli.code, 0);
    await killed(holder);
  });
}

rootTest(
  "another user's unreadable (0600) lock file or claim is never taken for free by the other driver; the listing skips what it cannot read",
  async (t, build) => {
    const dir = sharedDir();
    const name = uniqueName('private');
    const listed = uniqueName('listed');
    const other = await hold(here, build, undefined, [listed, dir]);

    // A posix holder's file made private (as an older version under umask 077 left it): /proc/locks still shows the flock.
    const posix = await hold(here, build, undefined, [name, dir, 'posix']);
    chmodSync(posix.lockfile, 0o600);
    t.like(await tryLock(here, build, 'nobody', [name, dir, 'portable']), { acquired: false, holder: posix.pid });
    t.is(await askBoth(t, here, build, 'nobody', name, dir, {}, 'portable'), posix.pid);
    t.is(await askBoth(t, here, build, 'nobody', name, dir), posix.pid);
    const listing = await finish(here, build.argv(CLI, ['status', '--dir', dir, '--json']), 'nobody');
    t.is(listing.code, 0, listing.stderr);
    t.deepEqual(
      listedLocks(listing.stdout),
      [
        { name: listed, state: 'held', pid: other.pid },
        { name, state: 'held', pid: posix.pid },
      ].sort((a, b) => (a.name < b.name ? -1 : 1))
    );
    await killed(posix.process);

    // A portable claim made private: unreadable, it may be live, so never free.
    const claimed = uniqueName('claimed');
    const portable = await hold(here, build, undefined, [claimed, dir, 'portable']);
    chmodSync(portable.lockfile, 0o600);
    for (const argv of [build.argv(TRY, [claimed, dir, 'posix']), build.argv(HOLDER, [claimed, dir])]) {
      const result = await finish(here, argv, 'nobody');
      t.is(result.code, 1, result.stdout);
      t.regex(result.stderr, /code: 'ERR_LOCK_PERMISSION'/);
      t.true(
        result.stderr.includes(
          `No permission for the lock file ${portable.lockfile} (EACCES): it belongs to uid 0 and this user (uid 65534) may not read it.`
        ),
        result.stderr
      );
    }
    const cli = await finish(here, build.argv(CLI, ['--dir', dir, claimed, '--', 'echo', 'RAN']), 'nobody');
    t.is(cli.stdout, '', 'the command did not run');
    t.not(cli.code, 0);
    const skipped = await finish(here, build.argv(CLI, ['status', '--dir', dir, '--json']), 'nobody', { NODE_DEBUG: 'exclusive-process' });
    t.is(skipped.code, 0, skipped.stderr);
    t.deepEqual(
      (JSON.parse(skipped.stdout) as Array<{ name: string }>).map((row) => row.name),
      [listed, name].sort(),
      'the unreadable claim is skipped, the rest listed'
    );
    t.true(skipped.stderr.includes(`status: skipping ${portable.lockfile.replace(/\.pid$/, '.lock')}`), skipped.stderr);
    await killed(portable.process);
    await killed(other.process);
  }
);

rootTest(
  "portable driver: another user's dead claim in a sticky directory gets ERR_LOCK_PERMISSION naming the owner and the fix; never two holders",
  async (t, build) => {
    const dir = sharedDir();
    const name = uniqueName('portable');
    const other = await hold(here, build, OTHER, [name, dir, 'portable']);
    await killed(other.process);
    const claim = readFileSync(other.lockfile, 'utf8');
    const attempt = await finish(here, build.argv(TRY, [name, dir, 'portable']), 'nobody');
    t.is(attempt.code, 1);
    t.regex(attempt.stderr, /code: 'ERR_LOCK_PERMISSION'/);
    t.true(
      attempt.stderr.includes(
        `The lock '${name}' is free, but its file ${other.lockfile} was left by pid ${other.pid}, which is no longer running, and belongs to uid ${uidOf(OTHER)}: ` +
          `this user (uid 65534) may not remove it from ${dir} (EPERM), so cannot take the lock. ` +
          `Remove the file as uid ${uidOf(OTHER)} or root, or use the posix driver, which can lock another user's file.`
      ),
      attempt.stderr
    );
    t.is(readFileSync(other.lockfile, 'utf8'), claim, 'the claim is untouched');
    t.is(await askBoth(t, here, build, 'nobody', name, dir, {}, 'portable'), null);
    t.like(await tryLock(here, build, OTHER, [name, dir, 'portable']), { acquired: true }, 'its owner reclaims it');
  }
);
