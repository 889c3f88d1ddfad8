import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Exclusive, exclusive, InvalidArgumentError, LockFileError, windows } from '../src/index.js';
import { postgres } from '../src/postgres.js';
import { lockFileName } from '../src/drivers/file/path.js';
import { createPosixDriver as createPosixDriverForList } from '../src/drivers/posix/index.js';
import { lockDir, run, start } from './helpers/processes.js';

// Options and names are validated eagerly, with a TypeError and a stable code naming the option.
const badOptions: Array<[unknown, string, RegExp]> = [
  ['nope', 'ERR_INVALID_ARG_TYPE', /^options must be an object, got string "nope"$/],
  [{ wait: -1 }, 'ERR_INVALID_ARG_VALUE', /^options\.wait must be >= 0 milliseconds, got -1$/],
  [{ wait: NaN }, 'ERR_INVALID_ARG_VALUE', /^options\.wait/],
  [{ wait: '10' }, 'ERR_INVALID_ARG_TYPE', /^options\.wait must be a boolean or a number/],
  [{ wait: 2 ** 31 }, 'ERR_INVALID_ARG_VALUE', /^options\.wait must be at most 2147483647 milliseconds .*use wait: true to wait for ever$/],
  [{ die: 'yes' }, 'ERR_INVALID_ARG_TYPE', /^options\.die must be a boolean/],
  [{ exitCode: 256 }, 'ERR_INVALID_ARG_VALUE', /^options\.exitCode must be an integer from 0 to 255/],
  [{ exitCode: '1' }, 'ERR_INVALID_ARG_TYPE', /^options\.exitCode must be a number/],
  [{ signal: {} }, 'ERR_INVALID_ARG_TYPE', /^options\.signal must be an AbortSignal/],
  [{ dir: '' }, 'ERR_INVALID_ARG_VALUE', /^options\.dir must be a non-empty path/],
  [{ dir: 'a\0b' }, 'ERR_INVALID_ARG_VALUE', /^options\.dir must be a non-empty path without NUL/],
  [{ dir: 42 }, 'ERR_INVALID_ARG_TYPE', /^options\.dir must be a string/],
  [
    { driver: 'nfs' },
    'ERR_INVALID_ARG_VALUE',
    /^options\.driver must be 'posix', 'windows', 'portable' or a driver object, got string "nfs"$/,
  ],
  [{ driver: { kind: 'fake' } }, 'ERR_INVALID_ARG_TYPE', /^options\.driver must be/],
  [{ async: 'yes' }, 'ERR_INVALID_ARG_TYPE', /^options\.async must be a boolean, got string "yes"$/],
  [
    { naem: 'typo' },
    'ERR_INVALID_ARG_VALUE',
    /^options\.naem is not an option: did you mean 'name'\? \(known: name, die, skip, exitCode, wait, signal, dir, driver, async, mode, limit\)$/,
  ],
  [{ Wait: 10 }, 'ERR_INVALID_ARG_VALUE', /^options\.Wait is not an option: did you mean 'wait'\? \(known: /],
  [{ exit_code: 3 }, 'ERR_INVALID_ARG_VALUE', /^options\.exit_code is not an option: did you mean 'exitCode'\? \(known: /],
  [{ timeout: 10 }, 'ERR_INVALID_ARG_VALUE', /^options\.timeout is not an option: did you mean 'wait'\? \(known: /],
  [{ sginal: null }, 'ERR_INVALID_ARG_VALUE', /^options\.sginal is not an option: did you mean 'signal'\? \(known: /],
  [
    { retries: 3 },
    'ERR_INVALID_ARG_VALUE',
    /^options\.retries is not an option \(known: name, die, skip, exitCode, wait, signal, dir, driver, async, mode, limit\)$/,
  ],
  [
    { driver: 'postgres' },
    'ERR_INVALID_ARG_VALUE',
    /^options\.driver must be 'posix', 'windows', 'portable' or a driver object, got string "postgres": the postgres driver is an object; import \{ postgres \} from 'exclusive-process\/postgres' and pass driver: postgres\(\{ connectionString \}\)$/,
  ],
  [
    { driver: 'Posix' },
    'ERR_INVALID_ARG_VALUE',
    /^options\.driver must be 'posix', 'windows', 'portable' or a driver object, got string "Posix": did you mean 'posix'\?$/,
  ],
  [{ driver: 'portabel' }, 'ERR_INVALID_ARG_VALUE', /: did you mean 'portable'\?$/],
  [{ name: '' }, 'ERR_INVALID_LOCK_NAME', /^options\.name must not be empty$/],
  [{ name: 42 }, 'ERR_INVALID_ARG_TYPE', /^options\.name must be a string, got number 42$/],
  [{ name: 'bad \ud800 surrogate' }, 'ERR_INVALID_LOCK_NAME', /lone surrogate/],
  [{ name: 'x'.repeat(100_001) }, 'ERR_INVALID_LOCK_NAME', /^options\.name is 100001 characters long; the limit is 100000$/],
];

for (const [options, code, message] of badOptions) {
  test(`bad options ${JSON.stringify(options) ?? String(options)} throw ${code} from every form`, async (t) => {
    const expectation = { instanceOf: TypeError, code, message };
    t.throws(() => exclusive(() => {}, options as never), expectation);
    t.throws(() => Exclusive(options as never), expectation);
    t.throws(() => Exclusive.lock(options as never), expectation);
    t.throws(() => Exclusive.forever(options as never), expectation);
    t.throws(() => Exclusive.acquire(options as never), expectation, 'thrown synchronously, not as a rejection');
    await t.throwsAsync(
      Exclusive.run(options as never, () => {}),
      expectation
    );
    const error = t.throws(() => Exclusive.lock(options as never));
    t.true(error instanceof InvalidArgumentError);
  });
}

test('options.async describes a function: the forms that wrap none refuse it instead of ignoring it', async (t) => {
  const options = { name: 'async-refused', dir: lockDir(), async: true };
  const refused = (form: string): { code: string; message: string } => ({
    code: 'ERR_INVALID_ARG_VALUE',
    message: `options.async applies to exclusive(fn) and @Exclusive only, not to ${form}`,
  });
  t.throws(() => Exclusive.forever(options), refused('Exclusive.forever()'));
  t.throws(() => Exclusive.lock(options), refused('Exclusive.lock()'));
  t.throws(() => Exclusive.acquire(options), refused('Exclusive.acquire()'), 'thrown synchronously, not as a rejection');
  await t.throwsAsync(
    Exclusive.run(options, () => {}),
    refused('Exclusive.run() (it awaits what fn returns)')
  );
  t.is(await exclusive(() => Promise.resolve(7), options)(), 7);
});

test('a signal cannot stop a synchronous wait: every synchronous form refuses it with ERR_INVALID_ARG_VALUE; an aborted one throws its reason', async (t) => {
  const dir = lockDir();
  // Another process holds the lock (for 60 s at most): a signal silently ignored would block here.
  const holder = start('hold.ts', ['sync-signal', dir, '', '60000']);
  await holder.waitFor('held');
  const refused = {
    instanceOf: InvalidArgumentError,
    code: 'ERR_INVALID_ARG_VALUE',
    message: /^options\.signal cannot stop the wait of .*Use Exclusive\.acquire\(\) or an async function/,
  };
  for (const wait of [1000, true]) {
    const options = { name: 'sync-signal', dir, wait, signal: AbortSignal.timeout(50) };
    t.throws(() => Exclusive.lock(options), refused, `lock() with wait: ${wait}`);
    t.throws(() => Exclusive.forever(options), refused, `forever() with wait: ${wait}`);
    t.throws(() => exclusive(() => {}, options), refused, `exclusive(syncFn) with wait: ${wait}, when wrapping`);
    t.throws(
      () => Exclusive(options)({}, 'job', { value() {}, writable: true, configurable: true }),
      refused,
      `@Exclusive on a sync method with wait: ${wait}`
    );
    // Asynchronous forms observe it; a synchronous form that does not wait has nothing to stop.
    const job = exclusive(async () => {}, options);
    await t.throwsAsync(job(), { any: true, name: 'TimeoutError' });
    t.throws(() => Exclusive.lock({ ...options, wait: false, signal: new AbortController().signal }), { code: 'ERR_LOCK_HELD' });
  }
  // A signal aborted already stops the call before it waits, in every form (as before).
  const aborted = { name: 'sync-signal', dir, wait: true, signal: AbortSignal.abort(new Error('stopped')) };
  t.throws(() => Exclusive.lock(aborted), { message: 'stopped' });
  t.throws(() => Exclusive.forever(aborted), { message: 'stopped' });
  t.throws(() => exclusive(() => {}, aborted)(), { message: 'stopped' });
  await t.throwsAsync(Exclusive.acquire(aborted), { message: 'stopped' });
  holder.child.kill('SIGTERM');
  await holder.finished;
});

test('bad arguments: non-functions, generators, non-methods', (t) => {
  t.throws(() => exclusive('x' as never), { code: 'ERR_INVALID_ARG_TYPE', message: 'exclusive(fn) needs a function, got string "x"' });
  // @ts-expect-error the types refuse generator functions too
  t.throws(() => exclusive(function* gen() {}), { code: 'ERR_INVALID_ARG_VALUE', message: /generator function cannot be made exclusive/ });
  // @ts-expect-error the types refuse generator functions too
  t.throws(() => exclusive(async function* gen() {}), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => Exclusive.holder(''), { code: 'ERR_INVALID_LOCK_NAME', message: 'name must not be empty' });
  // holder() takes dir and driver only; a typo is an error, not a question to the default driver.
  t.throws(() => Exclusive.holder('x', { drvier: 'portable' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: "options.drvier is not an option of holder(): did you mean 'driver'? (known: dir, driver)",
  });
  t.throws(() => Exclusive.holder('x', { Dir: '/tmp' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: "options.Dir is not an option of holder(): did you mean 'dir'? (known: dir, driver)",
  });
  t.throws(() => Exclusive.holder('x', { wait: true } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: 'options.wait is not an option of holder() (known: dir, driver)',
  });
  t.throws(() => Exclusive.holder('x', 42 as never), { code: 'ERR_INVALID_ARG_TYPE', message: 'options must be an object, got number 42' });
  t.throws(() => Exclusive()(class {} as never, { kind: 'field', name: 'x' } as never), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: /decorates methods/,
  });
  t.throws(() => Exclusive()({}, 'x', { value: 42 } as never), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: '@Exclusive decorates methods, not a property holding number 42',
  });
});

test('the driver factories suggest the option a typo meant, too', (t) => {
  t.throws(() => windows({ Scope: 'global' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: "options.Scope is not an option of windows(): did you mean 'scope'? (known: scope)",
  });
  t.throws(() => windows({ global: true } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: 'options.global is not an option of windows() (known: scope)',
  });
  const known =
    'connectionString, host, port, user, password, database, ssl, sessionTimeout, heartbeat, connectTimeout, maxIdle, clientConfig';
  t.throws(() => postgres({ conectionString: 'postgres://h/d' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: `options.conectionString is not a postgres() option: did you mean 'connectionString'? (known: ${known})`,
  });
  t.throws(() => postgres({ url: 'postgres://h/d' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: `options.url is not a postgres() option: did you mean 'connectionString'? (known: ${known})`,
  });
  t.throws(() => postgres({ hots: 'h' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: `options.hots is not a postgres() option: did you mean 'host'? (known: ${known})`,
  });
  t.throws(() => postgres({ pool: 3 } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: `options.pool is not a postgres() option (known: ${known})`,
  });
});

/** The portable driver's claim is `<name>.pid`, the posix driver's file `<name>.lock`. */
const procMessage = (dir: string, name: string, suffix: 'lock' | 'pid'): string =>
  `The lock directory ${dir} does not accept new files (creating exclusive-process.${name}.${suffix} there fails with ENOENT): ` +
  'it is on a virtual file system such as /proc or /sys. Choose a directory on an ordinary file system (such as /run/lock or /tmp) with the `dir` option or EXCLUSIVE_PROCESS_DIR.';

test('a lock directory on /proc says what is wrong with it and what to do, with every file driver', async (t) => {
  for (const driver of ['posix', 'portable'] as const) {
    const suffix = driver === 'posix' ? 'lock' : 'pid';
    const error = t.throws(
      () => Exclusive.lock({ name: 'in-proc', dir: '/proc', driver }),
      { instanceOf: LockFileError, code: 'ERR_LOCK_DIR', message: procMessage('/proc', 'in-proc', suffix) },
      driver
    );
    t.is(error?.path, '/proc');
    await t.throwsAsync(
      Exclusive.run({ name: 'in-proc', dir: '/proc/sys', driver }, () => {}),
      { code: 'ERR_LOCK_DIR', message: procMessage('/proc/sys', 'in-proc', suffix) },
      driver
    );
  }
});

test('any name maps to one file inside the lock directory: slashes, .., NUL, unicode, 10 000 characters', (t) => {
  const dir = lockDir();
  const names = [
    '../../etc/passwd',
    '/',
    '..',
    '.',
    'a/b',
    'a%2Fb',
    'nul\0byte',
    'ünï©ødé 🚀',
    'x'.repeat(10_000),
    'y'.repeat(10_000),
    'CON',
    ' ',
    '-rf',
  ];
  const files = new Set<string>();
  for (const name of names) {
    using lock = Exclusive.lock({ name, dir });
    t.is(lock.lockfile, join(dir, lockFileName(name)));
    t.true(Buffer.byteLength(lockFileName(name)) <= 255, 'within the file name limit');
    t.is(Exclusive.holder(name, { dir })?.pid, process.pid);
    files.add(lock.lockfile);
  }
  t.is(files.size, names.length, 'distinct names, distinct files');
  t.deepEqual(readdirSync(dir).sort(), [...files].map((f) => f.slice(dir.length + 1)).sort(), 'nothing outside the directory');
  t.is(lockFileName('a/b'), 'exclusive-process.a%2Fb.lock');
  t.is(lockFileName('a%2Fb'), 'exclusive-process.a%252Fb.lock');
});

test('the longest name, in the characters JSON escapes most, is held and reported', (t) => {
  const dir = lockDir();
  const name = '\0'.repeat(100_000); // six bytes each in the JSON record
  using lock = Exclusive.lock({ name, dir });
  t.true(lock.held);
  t.is(Exclusive.holder(name, { dir })?.name, name);
  t.deepEqual(createPosixDriverForList().list!(dir), [name]);
});

test('a symlink at the lock path is refused and its target is not touched', (t) => {
  const dir = lockDir();
  const victim = join(lockDir(), 'victim');
  writeFileSync(victim, 'precious');
  symlinkSync(victim, join(dir, lockFileName('link')));
  const error = t.throws(() => Exclusive.lock({ name: 'link', dir }), { instanceOf: LockFileError });
  t.is(error?.code, 'ERR_LOCK_FILE_UNSAFE');
  t.regex(error.message, /is a symbolic link; refusing to follow it/);
  t.is(readFileSync(victim, 'utf8'), 'precious');
  // A dangling symlink (the classic /tmp attack: make us create the target) is refused too.
  const dangling = join(lockDir(), 'created-by-attack');
  symlinkSync(dangling, join(dir, lockFileName('dangling')));
  t.throws(() => Exclusive.lock({ name: 'dangling', dir }), { code: 'ERR_LOCK_FILE_UNSAFE' });
  t.false(existsSync(dangling));
});

test('a hard link, a directory or a FIFO at the lock path is refused', (t) => {
  const dir = lockDir();
  const victim = join(lockDir(), 'victim');
  writeFileSync(victim, 'precious');
  linkSync(victim, join(dir, lockFileName('hard')));
  t.throws(() => Exclusive.lock({ name: 'hard', dir }), { code: 'ERR_LOCK_FILE_UNSAFE', message: /has 2 hard links/ });
  t.is(readFileSync(victim, 'utf8'), 'precious');
  mkdirSync(join(dir, lockFileName('directory')));
  t.throws(() => Exclusive.lock({ name: 'directory', dir }), { code: 'ERR_LOCK_FILE_UNSAFE' });
  execFileSync('mkfifo', [join(dir, lockFileName('fifo'))]);
  t.throws(() => Exclusive.lock({ name: 'fifo', dir }), { code: 'ERR_LOCK_FILE_UNSAFE', message: /not a regular file/ });
});

test('a lock directory that is a file, or cannot be created, gets ERR_LOCK_DIR / ERR_LOCK_PERMISSION', (t) => {
  const file = join(lockDir(), 'file');
  writeFileSync(file, '');
  t.throws(() => Exclusive.lock({ name: 'x', dir: file }), { code: 'ERR_LOCK_DIR', message: /is not a directory/ });
  t.throws(() => Exclusive.lock({ name: 'x', dir: join(file, 'sub') }), { instanceOf: LockFileError });
  t.throws(() => Exclusive.lock({ name: 'x', dir: '/proc/self/no-such-dir' }), { instanceOf: LockFileError });
});

test('a missing lock directory is created; EXCLUSIVE_PROCESS_DIR sets the default', async (t) => {
  const dir = join(lockDir(), 'new', 'nested');
  const lock = Exclusive.lock({ name: 'x', dir });
  t.is(lock.lockfile, join(dir, 'exclusive-process.x.lock'));
  await lock.release();
  const portableDir = join(lockDir(), 'new', 'nested');
  const portable = Exclusive.lock({ name: 'x', dir: portableDir, driver: 'portable' });
  t.is(Exclusive.holder('x', { dir: portableDir, driver: 'portable' })?.pid, process.pid);
  await portable.release();
  const envDir = lockDir();
  const result = await run('try-lock.ts', ['env-dir', '', ''], { EXCLUSIVE_PROCESS_DIR: envDir });
  t.true(JSON.parse(result.stdout).acquired);
  t.deepEqual(readdirSync(envDir), [], 'created in the env dir and removed at exit');
});

test('asking who holds a lock, or listing locks, never creates the lock directory', (t) => {
  const missing = join(lockDir(), 'missing', 'nested');
  for (const driver of ['posix', 'portable'] as const) t.is(Exclusive.holder('x', { dir: missing, driver }), null, driver);
  t.deepEqual(createPosixDriverForList().list!(missing), []);
  t.false(existsSync(join(missing, '..')), 'nothing was created');
  const file = join(lockDir(), 'file');
  writeFileSync(file, '');
  t.throws(() => Exclusive.holder('x', { dir: file }), { code: 'ERR_LOCK_DIR' });
  t.throws(() => createPosixDriverForList().list!(file), { code: 'ERR_LOCK_DIR', message: /is not a directory/ });
});

test('garbage, 0, huge numbers and half-written records in a lock file are ignored', async (t) => {
  const dir = lockDir();
  for (const content of [
    'garbage',
    '0',
    '0\n',
    '99999999999999999999\n',
    '{"v":1,"name":"x","pid":0}\n',
    '{"v":1,"name":"x","pid":-5}\n',
    '{"v":1,"name":"x","pid":1e300}\n',
    '{"v":1,"name":"x","pid":1',
    '\0\0\0\0',
  ]) {
    writeFileSync(join(dir, lockFileName('tampered')), content);
    t.is(Exclusive.holder('tampered', { dir }), null, `free with ${JSON.stringify(content)}`);
    const holder = start('hold.ts', ['tampered', dir]);
    await holder.waitFor('held');
    const seen = Exclusive.holder('tampered', { dir });
    t.is(seen?.pid, holder.child.pid, `holder pid with ${JSON.stringify(content)}`);
    holder.child.kill('SIGKILL');
    await holder.finished;
  }
});

test('a record naming a live unrelated process (pid reuse) does not make a free lock look held', async (t) => {
  const dir = lockDir();
  const sleeper = spawn('sleep', ['30']);
  const fake = {
    v: 1,
    name: 'reuse',
    pid: sleeper.pid,
    start: '1',
    host: 'elsewhere',
    command: 'old holder',
    since: new Date().toISOString(),
  };
  writeFileSync(join(dir, lockFileName('reuse')), `${JSON.stringify(fake)}\n`);
  t.is(Exclusive.holder('reuse', { dir }), null);
  const result = JSON.parse((await run('try-lock.ts', ['reuse', dir, 'posix'])).stdout);
  t.true(result.acquired);
  // And a real holder is reported by the pid the kernel knows, whatever the file says.
  const holder = start('hold.ts', ['reuse', dir]);
  await holder.waitFor('held');
  const refused = JSON.parse((await run('try-lock.ts', ['reuse', dir, 'posix'])).stdout);
  t.is(refused.holder, holder.child.pid);
  t.is(refused.message, `Another 'reuse' process is already running (pid ${holder.child.pid}).`);
  const info = Exclusive.holder('reuse', { dir })!;
  t.is(info.command?.includes('hold.ts'), true);
  t.true(info.since instanceof Date);
  holder.child.kill('SIGKILL');
  sleeper.kill();
});

test('die: prints the message to stderr and exits with exitCode', async (t) => {
  const dir = lockDir();
  const holder = start('hold.ts', ['dying', dir]);
  await holder.waitFor('held');
  const second = await run('hold.ts', ['dying', dir]);
  t.is(second.code, 1);
  t.is(second.stderr, `Another 'dying' process is already running (pid ${holder.child.pid}).\n`);
  t.is(second.stdout, '');
  const custom = await run('die-code.ts', [dir, '75']);
  t.is(custom.code, 75);
  t.is(custom.stderr, `Another 'dying' process is already running (pid ${holder.child.pid}).\n`);
  holder.child.kill('SIGTERM');
  await holder.finished;
});

test('worker threads of one process exclude each other: 4 workers x 100 increments = 400', async (t) => {
  const dir = lockDir();
  const counter = join(dir, 'counter');
  writeFileSync(counter, '0');
  const result = await run('workers.ts', [dir, counter, '4', '100']);
  t.is(result.code, 0, result.stderr);
  t.is(readFileSync(counter, 'utf8'), '400');
});

test('only forever() installs signal handlers: other forms leave SIGINT, SIGTERM and SIGHUP to their default', async (t) => {
  const dir = lockDir();
  for (const how of ['lock', 'exclusive', 'forever']) {
    const child = start('lock-then-idle.ts', [dir, how]);
    const listeners = JSON.parse((await child.waitFor('locked')).slice('locked '.length));
    t.deepEqual(listeners, how === 'forever' ? [1, 1, 1] : [0, 0, 0], how);
    child.child.kill('SIGTERM');
    t.is((await child.finished).signal, 'SIGTERM', how);
  }
});
