// The Windows named-mutex driver, tested for real: a Windows node.exe under
// Wine, real kernel mutexes, real child processes. Run by test/drivers/windows/run.sh
// (which builds the library into ../dist beside this file).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const { Exclusive, CannotAcquireLock, LockFileError, InvalidArgumentError } = require('../dist/index.js');
const { windows, mutexName, createWindowsDriver } = require('../dist/drivers/windows/index.js');
const { lockDirectory } = require('../dist/drivers/file/path.js');
const { liveWaiters } = require('../dist/drivers/windows/waiter-pool.js');

const FIXTURE = join(import.meta.dirname, 'fixtures', 'child.cjs');
const OUT = mkdtempSync(join(process.env.EXCLUSIVE_WINE_OUT || tmpdir(), 'run-'));
const children = new Set();
let serial = 0;

after(() => {
  for (const child of children) child.kill();
});

/** A lock name no other test uses. */
const unique = (label) => `${label}-${process.pid}-${++serial}`;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts fixtures/child.cjs in a new Windows process; its stdout/stderr go to files. */
function child(options) {
  const id = ++serial;
  const out = join(OUT, `child-${id}.out`);
  const err = join(OUT, `child-${id}.err`);
  const control = join(OUT, `child-${id}.go`);
  const stdout = openSync(out, 'w');
  const stderr = openSync(err, 'w');
  const arg = Buffer.from(JSON.stringify({ after: 'hold', ...options, control })).toString('base64');
  const proc = spawn(process.execPath, [FIXTURE, arg], { stdio: ['ignore', stdout, stderr] });
  closeSync(stdout);
  closeSync(stderr);
  children.add(proc);
  const exited = new Promise((resolve) =>
    proc.on('exit', (code) => {
      children.delete(proc);
      resolve(code);
    })
  );
  const events = () =>
    readFileSync(out, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  return {
    pid: proc.pid,
    proc,
    exited,
    events,
    stderr: () => readFileSync(err, 'utf8'),
    go: () => writeFileSync(control, ''),
    /** Resolves with the first event of this kind (fails after `ms`). */
    async until(kind, ms = 20_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = events().find((e) => e.event === kind);
        if (found) return found;
        if (Date.now() > deadline)
          throw new Error(
            `no '${kind}' event from child ${proc.pid}; stdout: ${readFileSync(out, 'utf8')} stderr: ${readFileSync(err, 'utf8')}`
          );
        const code = await Promise.race([exited, sleep(10).then(() => undefined)]);
        if (code !== undefined && !events().some((e) => e.event === kind)) {
          throw new Error(
            `child ${proc.pid} exited ${code} without '${kind}'; stdout: ${readFileSync(out, 'utf8')} stderr: ${readFileSync(err, 'utf8')}`
          );
        }
      }
    },
  };
}

/** A child holding `name` (forever() unless told otherwise), once it reports holding it. */
async function holder(name, options = {}) {
  const c = child({ name, how: 'forever', ...options });
  const held = await c.until('held');
  return { ...c, held };
}

test('mutex names: Local\\ by default, Global\\ on request, no backslash after the prefix, bounded length', () => {
  assert.equal(createWindowsDriver(), windows());
  assert.equal(windows({ scope: 'local' }), windows());
  assert.notEqual(windows({ scope: 'global' }), windows());
  assert.equal(mutexName('nightly', undefined), 'Local\\exclusive-process.nightly');
  assert.equal(mutexName('nightly', undefined, 'global'), 'Global\\exclusive-process.nightly');
  assert.equal(mutexName('C:\\jobs\\a b.js', undefined), 'Local\\exclusive-process.C%3A%5Cjobs%5Ca%20b.js');
  for (const name of ['x'.repeat(5000), '\\'.repeat(300), '😀'.repeat(400), 'Global\\evil', '..\\..\\x']) {
    for (const scope of ['local', 'global']) {
      const mutex = mutexName(name, 'C:\\some\\dir', scope);
      assert.ok(mutex.length <= 260, `${mutex.length} chars`);
      assert.ok(!mutex.slice(mutex.indexOf('\\') + 1).includes('\\'), mutex);
    }
  }
  assert.notEqual(mutexName('x'.repeat(5000), undefined), mutexName(`${'x'.repeat(4999)}y`, undefined));
  assert.match(mutexName('a', join(OUT, 'd1')), /^Local\\exclusive-process\.a@[0-9a-f]{16}$/);
  assert.notEqual(mutexName('a', join(OUT, 'd1')), mutexName('a', join(OUT, 'd2')));
  assert.equal(mutexName('a', 'C:\\Locks'), mutexName('a', 'c:\\locks\\')); // Windows paths ignore case
  assert.throws(
    () => windows({ scope: 'session' }),
    (e) => e instanceof InvalidArgumentError && e.code === 'ERR_INVALID_ARG_VALUE'
  );
  assert.throws(
    () => windows({ scop: 'local' }),
    (e) => e instanceof InvalidArgumentError && e.code === 'ERR_INVALID_ARG_VALUE'
  );
  assert.throws(
    () => windows('global'),
    (e) => e instanceof InvalidArgumentError && e.code === 'ERR_INVALID_ARG_TYPE'
  );
});

test('the default driver on Windows is the named mutex; a lock is free, held, then free again', () => {
  const name = unique('basic');
  assert.equal(Exclusive.holder(name), null);
  const lock = Exclusive.lock({ name });
  assert.equal(lock.driver, 'windows');
  assert.equal(lock.lockfile, `Local\\exclusive-process.${name}`);
  assert.equal(lock.abandoned, false);
  assert.equal(Exclusive.holder(name).pid, process.pid);
  lock.release();
  assert.equal(Exclusive.holder(name), null);
  Exclusive.lock({ name }).release(); // and again: the cached handle is reused
});

test("a second process is refused with the holder's pid, and holder() describes the holder", async () => {
  const name = unique('refused');
  const h = await holder(name);
  assert.throws(
    () => Exclusive.lock({ name }),
    (e) =>
      e instanceof CannotAcquireLock &&
      e.pid === h.pid &&
      e.lockName === name &&
      e.message === `Another '${name}' process is already running (pid ${h.pid}).`
  );
  await assert.rejects(Exclusive.acquire({ name }), (e) => e instanceof CannotAcquireLock && e.pid === h.pid);
  const info = Exclusive.holder(name);
  assert.equal(info.pid, h.pid);
  assert.equal(info.driver, 'windows');
  assert.equal(info.lockfile, `Local\\exclusive-process.${name}`);
  assert.match(info.command, /child\.cjs/);
  assert.match(info.start, /^\d{17,}$/); // the holder's creation time (GetProcessTimes), against pid reuse
  assert.ok(info.since instanceof Date && Date.now() - info.since.getTime() < 60_000);
  // Held but without a readable record: the pid is unknown, not made up.
  const infoFile = join(lockDirectory(undefined), `exclusive-process.${name}.mutex`);
  assert.ok(existsSync(infoFile));
  unlinkSync(infoFile);
  assert.deepEqual(Exclusive.holder(name), { name, pid: null, lockfile: `Local\\exclusive-process.${name}`, driver: 'windows' });
  assert.throws(
    () => Exclusive.lock({ name }),
    (e) => e instanceof CannotAcquireLock && e.pid === null
  );
  // A record whose pid lives but with another start time (a reused pid) is not believed either.
  writeFileSync(infoFile, `${JSON.stringify({ v: 1, name, pid: h.pid, start: '1' })}\n`);
  assert.equal(Exclusive.holder(name).pid, null);
  writeFileSync(infoFile, `${JSON.stringify({ v: 1, name, pid: h.pid, start: info.start })}\n`);
  assert.equal(Exclusive.holder(name).pid, h.pid);
  h.proc.kill();
});

test('a name taken by another kind of kernel object is refused with ERR_LOCK_FILE_UNSAFE, not treated as held', () => {
  const ffi = require('ffi-rs');
  ffi.open({ library: 'kernel32', path: 'kernel32.dll' });
  const { CreateEventW, CloseHandle } = ffi.define({
    CreateEventW: {
      library: 'kernel32',
      retType: ffi.DataType.I64,
      paramsType: [ffi.DataType.I64, ffi.DataType.I32, ffi.DataType.I32, ffi.DataType.WString],
    },
    CloseHandle: { library: 'kernel32', retType: ffi.DataType.I32, paramsType: [ffi.DataType.I64] },
  });
  const name = unique('squatted');
  const event = CreateEventW([0, 1, 0, `Local\\exclusive-process.${name}`]);
  assert.ok(event !== 0);
  try {
    assert.throws(
      () => Exclusive.lock({ name }),
      (e) =>
        e instanceof LockFileError &&
        e.code === 'ERR_LOCK_FILE_UNSAFE' &&
        e.path === `Local\\exclusive-process.${name}` &&
        /another kind of kernel object/.test(e.message)
    );
  } finally {
    CloseHandle([event]);
  }
  Exclusive.lock({ name }).release(); // the name is free again
});

test("die: a second process prints the message with the holder's pid and exits 1", async () => {
  const name = unique('die');
  const h = await holder(name);
  const second = child({ name, how: 'forever', die: true });
  assert.equal(await second.exited, 1);
  assert.equal(second.stderr().replace(/\r/g, ''), `Another '${name}' process is already running (pid ${h.pid}).\n`);
  assert.deepEqual(
    second.events().map((e) => e.event),
    ['starting']
  );
  h.proc.kill();
});

for (const [how, label] of [
  ['acquire', 'an async waiter (waiter thread)'],
  ['lock', 'a sync waiter (Exclusive.lock with wait)'],
]) {
  test(`${label} in another process gets the lock when the holder releases it`, async (t) => {
    const name = unique(`release-${how}`);
    const h = await holder(name, { how: 'lock', after: 'release' });
    const waiter = child({ name, how, wait: 20_000, after: 'exit-now' });
    await waiter.until('starting');
    await sleep(how === 'acquire' ? 300 : 150); // let it start waiting (the waiter thread starts on the first wait)
    assert.deepEqual(
      waiter.events().map((e) => e.event),
      ['starting']
    );
    h.go();
    const released = await h.until('released');
    const held = await waiter.until('held');
    assert.equal(held.abandoned, false);
    assert.equal(await waiter.exited, 0);
    t.diagnostic(`hand-off latency (release started -> other process holds): ${(held.t - released.before).toFixed(1)} ms`);
    h.proc.kill();
  });
}

test('a waiter in this process gets the lock when the holder releases, exits, or is killed (then abandoned)', async (t) => {
  const name = unique('handoff');
  for (const [after, expectAbandoned] of [
    ['release', false],
    ['exit', false],
    ['kill', true],
  ]) {
    const h = await holder(name, { how: after === 'release' ? 'lock' : 'forever', after });
    const waiting = Exclusive.acquire({ name, wait: 20_000 });
    await sleep(200);
    const start = now();
    if (after === 'kill')
      h.proc.kill(); // TerminateProcess: the mutex is abandoned
    else h.go();
    const lock = await waiting;
    const latency = now() - start;
    assert.equal(lock.abandoned, expectAbandoned, after);
    assert.equal(Exclusive.holder(name).pid, process.pid);
    if (after === 'exit') assert.equal(await h.exited, 0);
    t.diagnostic(`${after}: acquired ${latency.toFixed(1)} ms after the holder was told`);
    lock.release();
    if (after === 'release') h.proc.kill();
    await h.exited;
  }
});

test('forever() cleanup at exit releases the mutex (not abandoned) and removes the info file', async () => {
  const name = unique('exit');
  const h = await holder(name, { after: 'exit' });
  const infoFile = join(lockDirectory(undefined), `exclusive-process.${name}.mutex`);
  assert.ok(existsSync(infoFile));
  h.go();
  assert.equal(await h.exited, 0);
  assert.equal(existsSync(infoFile), false);
  assert.equal(Exclusive.holder(name), null);
  const lock = Exclusive.lock({ name });
  assert.equal(lock.abandoned, false);
  lock.release();
});

test('a lock released before a normal exit leaves no info file behind', async () => {
  const name = unique('released-exit');
  const h = await holder(name, { how: 'lock', after: 'release-exit' });
  const infoFile = join(lockDirectory(undefined), `exclusive-process.${name}.mutex`);
  assert.ok(existsSync(infoFile));
  h.go();
  assert.equal(await h.exited, 0);
  assert.equal(existsSync(infoFile), false);
});

test('a lock taken by the waiter thread is released at exit too (not abandoned)', async () => {
  const name = unique('exit-waited');
  const h = await holder(name, { how: 'lock', after: 'release' });
  const waiter = child({ name, how: 'acquire', wait: true, after: 'exit' });
  await waiter.until('starting');
  await sleep(300);
  h.go();
  assert.equal((await waiter.until('held')).abandoned, false);
  waiter.go();
  assert.equal(await waiter.exited, 0);
  const lock = Exclusive.lock({ name });
  assert.equal(lock.abandoned, false);
  lock.release();
  h.proc.kill();
});

test('wait: ms times out with CannotAcquireLock naming the holder, on time', async (t) => {
  const name = unique('timeout');
  const h = await holder(name);
  for (const wait of [300, 1000]) {
    const start = now();
    await assert.rejects(Exclusive.acquire({ name, wait }), (e) => e instanceof CannotAcquireLock && e.pid === h.pid);
    const took = now() - start;
    t.diagnostic(`wait: ${wait} gave up after ${took.toFixed(0)} ms`);
    assert.ok(took >= wait - 5 && took < wait + 400, `${took} ms`);
  }
  const start = now();
  assert.throws(
    () => Exclusive.lock({ name, wait: 300 }),
    (e) => e instanceof CannotAcquireLock && e.pid === h.pid
  );
  assert.ok(now() - start >= 295);
  h.proc.kill();
});

test('an AbortSignal stops a wait at once; the waiter thread is then reused', async (t) => {
  const name = unique('abort');
  const h = await holder(name);
  const controller = new AbortController();
  const waiting = Exclusive.acquire({ name, wait: true, signal: controller.signal });
  await sleep(300);
  const start = now();
  const reason = new Error('stop');
  controller.abort(reason);
  await assert.rejects(waiting, (e) => e === reason);
  t.diagnostic(`abort took ${(now() - start).toFixed(1)} ms`);
  assert.ok(now() - start < 200);
  await assert.rejects(Exclusive.acquire({ name, signal: AbortSignal.abort(reason), wait: true }), (e) => e === reason);
  const again = Exclusive.acquire({ name, wait: 10_000 });
  await sleep(100);
  h.proc.kill();
  const lock = await again;
  assert.equal(lock.abandoned, true);
  lock.release();
});

test('a pending wait does not delay process exit', async () => {
  const name = unique('exit-while-waiting');
  const h = await holder(name);
  const waiter = child({ name, how: 'acquire', wait: true });
  await waiter.until('starting');
  await sleep(300);
  const start = now();
  waiter.proc.kill('SIGINT'); // TerminateProcess on Windows
  await waiter.exited;
  assert.ok(now() - start < 2000);
  // And a waiter that exits by itself while waiting (process.exit from a timer) ends promptly.
  const script = join(OUT, 'exit-while-waiting.cjs');
  writeFileSync(
    script,
    `const { Exclusive } = require(${JSON.stringify(join(import.meta.dirname, '..', 'dist', 'index.js'))});
    Exclusive.acquire({ name: ${JSON.stringify(name)}, wait: true });
    setTimeout(() => { process.stdout.write('exiting ' + Date.now() + '\\n'); process.exit(7); }, 600);`
  );
  const out = join(OUT, 'exit-while-waiting.out');
  const fd = openSync(out, 'w');
  const proc = spawn(process.execPath, [script], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const code = await new Promise((resolve) => proc.on('exit', resolve));
  const exiting = Number(/exiting (\d+)/.exec(readFileSync(out, 'utf8'))[1]);
  assert.equal(code, 7);
  assert.ok(Date.now() - exiting < 1500, `${Date.now() - exiting} ms from process.exit() to exit`);
  assert.equal(Exclusive.holder(name).pid, h.pid);
  h.proc.kill();
});

test('names with odd characters: each maps to its own mutex and excludes across processes', async () => {
  const names = [
    'back\\slash',
    'a/b',
    'a%2Fb',
    'C:\\jobs\\nightly.js',
    'Global\\not-a-scope',
    'space and "quotes"',
    'ünïcødé 😀',
    '%',
    '.',
    'x'.repeat(3000),
  ];
  const holders = await Promise.all(names.map((name) => holder(`${name}-${process.pid}`)));
  for (const [i, name] of names.entries()) {
    const full = `${name}-${process.pid}`;
    assert.throws(
      () => Exclusive.lock({ name: full }),
      (e) => e instanceof CannotAcquireLock && e.pid === holders[i].pid,
      name
    );
    assert.equal(Exclusive.holder(full).pid, holders[i].pid, name);
    assert.equal(Exclusive.holder(full).name, full);
  }
  for (const h of holders) h.proc.kill();
});

test('dir separates locks as it does for lock files; the info file goes there', async () => {
  const name = unique('dir');
  const dir1 = join(OUT, 'locks1');
  const dir2 = join(OUT, 'locks2');
  const h = await holder(name, { dir: dir1 });
  assert.ok(existsSync(join(dir1, `exclusive-process.${name}.mutex`)));
  assert.throws(
    () => Exclusive.lock({ name, dir: dir1 }),
    (e) => e instanceof CannotAcquireLock && e.pid === h.pid
  );
  Exclusive.lock({ name, dir: dir2 }).release();
  Exclusive.lock({ name }).release();
  assert.deepEqual(windows().list(dir1), [name]);
  h.proc.kill();
});

test('scope global: Global\\ mutexes exclude each other and are apart from Local\\ ones', async () => {
  const name = unique('global');
  const h = await holder(name, { scope: 'global' });
  assert.equal(h.held.lockfile, `Global\\exclusive-process.${name}`);
  const driver = windows({ scope: 'global' });
  assert.throws(
    () => Exclusive.lock({ name, driver }),
    (e) => e instanceof CannotAcquireLock && e.pid === h.pid
  );
  assert.equal(Exclusive.holder(name, { driver }).pid, h.pid);
  Exclusive.lock({ name }).release(); // Local\ is another namespace
  h.proc.kill();
  await h.exited;
  const lock = Exclusive.lock({ name, driver });
  assert.equal(lock.abandoned, true);
  lock.release();
});

test('threads: a worker thread of the same process is refused, then waits and gets it', async () => {
  const name = unique('threads');
  const lock = Exclusive.lock({ name });
  const worker = new Worker(
    `
    const { parentPort } = require('node:worker_threads');
    const { Exclusive } = require(${JSON.stringify(join(import.meta.dirname, '..', 'dist', 'index.js'))});
    try { Exclusive.lock({ name: ${JSON.stringify(name)} }); parentPort.postMessage('acquired at once'); }
    catch (e) { parentPort.postMessage('refused ' + e.pid); }
    Exclusive.acquire({ name: ${JSON.stringify(name)}, wait: 20000 }).then((l) => { parentPort.postMessage('acquired'); l.release(); });
  `,
    { eval: true }
  );
  const messages = [];
  const got = (text) =>
    new Promise((resolve) => {
      const check = () => (messages.includes(text) ? resolve() : setTimeout(check, 5));
      check();
    });
  worker.on('message', (m) => messages.push(m));
  await got(`refused ${process.pid}`);
  await sleep(200);
  assert.deepEqual(messages, [`refused ${process.pid}`]);
  lock.release();
  await got('acquired');
  await worker.terminate();
});

test('20 waiters in one process queue: one waits on the mutex, and each gets the lock in turn', async () => {
  const name = unique('queue');
  const h = await holder(name, { how: 'lock', after: 'release' });
  const order = [];
  const all = Array.from({ length: 20 }, (_, i) =>
    Exclusive.run({ name, wait: 20_000 }, async () => {
      order.push(i);
      await sleep(1);
    })
  );
  await sleep(300);
  h.go();
  await Promise.all(all);
  assert.deepEqual(
    order,
    Array.from({ length: 20 }, (_, i) => i)
  );
  h.proc.kill();
});

test('waits on many names at once start a thread each; afterwards at most 2 idle ones stay', async () => {
  const names = Array.from({ length: 5 }, (_, i) => unique(`burst${i}`));
  const holders = await Promise.all(names.map((name) => holder(name, { how: 'lock', after: 'release' })));
  const waits = names.map((name) => Exclusive.acquire({ name, wait: 20_000 }));
  await sleep(300);
  assert.ok(liveWaiters() >= 5, `${liveWaiters()} waiter threads`);
  for (const h of holders) h.go();
  const locks = await Promise.all(waits);
  for (const lock of locks) lock.release();
  assert.ok(liveWaiters() <= 2, `${liveWaiters()} waiter threads left`);
  // The kept ones still serve: one more wait on a held name gets it.
  const last = unique('after-burst');
  const h = await holder(last, { how: 'lock', after: 'release' });
  const again = Exclusive.acquire({ name: last, wait: 20_000 });
  await sleep(200);
  h.go();
  (await again).release();
  assert.ok(liveWaiters() <= 2);
  for (const c of [...holders, h]) c.proc.kill();
});

test('Ctrl+C: forever() cleanup releases the mutex (not abandoned) and removes the info file', async () => {
  // run.sh gives this process a console (a pty); children share it, so a
  // CTRL_C_EVENT reaches them as it does from a terminal. It reaches us too: ignore it here.
  const ffi = require('ffi-rs');
  ffi.open({ library: 'kernel32', path: 'kernel32.dll' });
  const { GenerateConsoleCtrlEvent } = ffi.define({
    GenerateConsoleCtrlEvent: {
      library: 'kernel32',
      retType: ffi.DataType.I32,
      paramsType: [ffi.DataType.U32, ffi.DataType.U32],
      errno: true,
    },
  });
  // The event goes to every process of the console: end children an earlier (failed) test left behind.
  await Promise.all([...children].map((c) => new Promise((resolve) => c.once('exit', resolve).kill())));
  const name = unique('ctrl-c');
  const h = await holder(name);
  const infoFile = join(lockDirectory(undefined), `exclusive-process.${name}.mutex`);
  assert.ok(existsSync(infoFile));
  let ours = 0;
  const ignore = () => ours++;
  process.on('SIGINT', ignore);
  try {
    const sent = GenerateConsoleCtrlEvent([0 /* CTRL_C_EVENT */, 0]);
    assert.equal(
      sent.value,
      1,
      `GenerateConsoleCtrlEvent failed (error ${sent.errnoCode}): run the suite through run.sh, which provides a console`
    );
    await h.exited;
    for (let i = 0; i < 100 && ours === 0; i++) await sleep(10);
  } finally {
    process.off('SIGINT', ignore);
  }
  assert.equal(ours, 1);
  assert.equal(existsSync(infoFile), false);
  const lock = Exclusive.lock({ name });
  assert.equal(lock.abandoned, false);
  lock.release();
});

// ---- Console events (Ctrl+Break, closing the console) end a forever() holder; they never leave it running unlocked ----

/** GenerateConsoleCtrlEvent, to send Ctrl+C or Ctrl+Break to every process of this console (run.sh gives us one). */
function consoleEvents() {
  const ffi = require('ffi-rs');
  ffi.open({ library: 'kernel32', path: 'kernel32.dll' });
  const { GenerateConsoleCtrlEvent } = ffi.define({
    GenerateConsoleCtrlEvent: {
      library: 'kernel32',
      retType: ffi.DataType.I32,
      paramsType: [ffi.DataType.U32, ffi.DataType.U32],
      errno: true,
    },
  });
  return (event) => {
    const sent = GenerateConsoleCtrlEvent([event, 0]);
    assert.equal(
      sent.value,
      1,
      `GenerateConsoleCtrlEvent failed (error ${sent.errnoCode}): run the suite through run.sh, which provides a console`
    );
  };
}

/** How Windows' own console handler ends a process on Ctrl+C, Ctrl+Break or closing the console. */
const STATUS_CONTROL_C_EXIT = 0xc000013a;

test('Ctrl+Break, Ctrl+C and closing the console: forever() cleans up and the process ends (STATUS_CONTROL_C_EXIT), with or without an uncaughtException handler', async (t) => {
  const send = consoleEvents();
  const events = [
    ['Ctrl+C', 'SIGINT', () => send(0 /* CTRL_C_EVENT */)],
    // Wine 8 sends no CTRL_BREAK_EVENT (its console server has only Ctrl+C), and closing the console
    // cannot be done from here: emit these as Node does on CTRL_BREAK_EVENT and CTRL_CLOSE_EVENT.
    ['Ctrl+Break (SIGBREAK emitted)', 'SIGBREAK', undefined],
    ['console closed (SIGHUP emitted)', 'SIGHUP', undefined],
  ];
  // A console event reaches every process of the console: end children an earlier (failed) test left behind.
  await Promise.all([...children].map((c) => new Promise((resolve) => c.once('exit', resolve).kill())));
  let ours = 0;
  const ignore = () => ours++;
  process.on('SIGINT', ignore);
  try {
    for (const [label, signal, sendEvent] of events) {
      for (const uncaught of [false, true]) {
        const what = `${label}, ${uncaught ? 'with' : 'without'} an uncaughtException handler`;
        const name = unique('console-event');
        const h = await holder(name, sendEvent ? { uncaught } : { uncaught, after: 'emit', signal });
        const infoFile = join(lockDirectory(undefined), `exclusive-process.${name}.mutex`);
        assert.ok(existsSync(infoFile), what);
        if (sendEvent) sendEvent();
        else h.go();
        // Until the holder has ended, nobody else may get the lock. (Cleanup releases the mutex an
        // instant before the process ends: a lock taken then must see the holder gone very soon.)
        let exited;
        h.exited.then((code) => (exited = code));
        const deadline = Date.now() + 15_000;
        let first; // the first lock we got: released by the holder's cleanup, not abandoned
        while (exited === undefined && Date.now() < deadline) {
          let lock;
          try {
            lock = Exclusive.lock({ name });
          } catch (error) {
            assert.ok(error instanceof CannotAcquireLock, `${what}: ${error}`);
          }
          if (lock !== undefined) {
            first ??= lock.abandoned;
            lock.release();
            const ended = await Promise.race([h.exited, sleep(5000).then(() => 'still running')]);
            assert.notEqual(
              ended,
              'still running',
              `${what}: another process got the lock while the holder still ran; its events: ${JSON.stringify(h.events())} stderr: ${h.stderr()}`
            );
          }
          await sleep(10);
        }
        const code = await Promise.race([h.exited, sleep(1).then(() => 'still running')]);
        assert.equal(code, STATUS_CONTROL_C_EXIT, `${what}: exit code ${code}; events ${JSON.stringify(h.events())} stderr: ${h.stderr()}`);
        assert.deepEqual(
          h.events().map((e) => e.event),
          ['starting', 'held'],
          what
        );
        assert.equal(h.stderr(), '', what);
        if (first === undefined) {
          // (else the info file is ours now)
          assert.equal(existsSync(infoFile), false, `${what}: the info file is left`);
          const lock = Exclusive.lock({ name });
          first = lock.abandoned;
          lock.release();
        }
        assert.equal(first, false, `${what}: cleanup released the mutex`);
        t.diagnostic(`${what}: exit code 0x${code.toString(16)}`);
      }
    }
  } finally {
    process.off('SIGINT', ignore);
  }
  assert.equal(ours, 2); // the real Ctrl+C, sent twice, reached us too
});

// ---- A synchronous wait for ever blocks in the kernel ----

test("a sync wait: true blocks in WaitForSingleObject: the release hands the mutex over at once, and a holder's death (abandoned) too", async (t) => {
  for (const [after, expectAbandoned] of [
    ['release-retry', false],
    ['kill', true],
  ]) {
    const name = unique(`sync-wait-${after}`);
    const h = await holder(name, { how: 'lock', after });
    const waiter = child({ name, how: 'lock', wait: true, after: 'exit-now' });
    let released;
    await waiter.until('starting');
    await sleep(1000); // let it reach its wait (nothing to observe from outside: it runs no JavaScript meanwhile)
    assert.deepEqual(
      waiter.events().map((e) => e.event),
      ['starting']
    );
    if (after === 'kill') {
      h.proc.kill(); // TerminateProcess: the mutex is abandoned
    } else {
      h.go();
      // Released and at once tried again: a waiter blocked in the kernel already owns it (a polling
      // waiter would not: it tries every few ms, so the holder retakes it first).
      released = await h.until('released');
      assert.equal(released.retook, false, 'the holder took the lock back: the waiter was not waiting in the kernel');
    }
    const held = await waiter.until('held');
    if (released) t.diagnostic(`hand-off latency (release started -> other process holds): ${(held.t - released.before).toFixed(1)} ms`);
    assert.equal(held.abandoned, expectAbandoned, after);
    assert.equal(await waiter.exited, 0);
    h.proc.kill();
    await h.exited;
  }
});

// ---- Default names follow the file, not the spelling of its path ----

test('one script started under two spellings of its path has one default name: the second copy dies', async () => {
  const dist = join(import.meta.dirname, '..', 'dist', 'index.js');
  const dir = join(OUT, 'jobs');
  mkdirSync(dir, { recursive: true });
  const scripts = {
    mjs: `import { createRequire } from 'node:module';
      import { existsSync } from 'node:fs';
      const { Exclusive } = createRequire(import.meta.url)(${JSON.stringify(dist)});
      const lock = Exclusive.forever({ die: true });
      process.stdout.write(JSON.stringify({ name: lock.name }) + '\\n');
      const wait = () => (existsSync(process.argv[2]) ? process.exit(0) : setTimeout(wait, 10));
      wait();`,
    cjs: `const { Exclusive } = require(${JSON.stringify(dist)});
      const { existsSync } = require('node:fs');
      const lock = Exclusive.forever({ die: true });
      process.stdout.write(JSON.stringify({ name: lock.name }) + '\\n');
      const wait = () => (existsSync(process.argv[2]) ? process.exit(0) : setTimeout(wait, 10));
      wait();`,
  };
  for (const [ext, code] of Object.entries(scripts)) {
    writeFileSync(join(dir, `nightly.${ext}`), code);
    const start = (path) => {
      const id = ++serial;
      const out = join(OUT, `spelling-${id}.out`);
      const err = join(OUT, `spelling-${id}.err`);
      const control = join(OUT, `spelling-${id}.go`);
      const [o, e] = [openSync(out, 'w'), openSync(err, 'w')];
      const proc = spawn(process.execPath, [path, control], { stdio: ['ignore', o, e] });
      closeSync(o);
      closeSync(e);
      children.add(proc);
      const exited = new Promise((resolve) => proc.on('exit', (c) => resolve(c)));
      return {
        proc,
        exited,
        out: () => readFileSync(out, 'utf8'),
        err: () => readFileSync(err, 'utf8'),
        go: () => writeFileSync(control, ''),
      };
    };
    const first = start(join(dir, `nightly.${ext}`));
    for (let i = 0; !first.out().includes('\n'); i++) {
      assert.ok(i < 2000, `the first copy never held its lock: ${first.err()}`);
      await sleep(10);
    }
    const { name } = JSON.parse(first.out());
    assert.match(name, new RegExp(`/jobs/nightly$`));
    // The same file, its folder and name spelt otherwise (Windows file names ignore case).
    const second = start(join(OUT, 'JOBS', `Nightly.${ext}`)); // (Node knows extensions in lower case only)
    const exitCode = await Promise.race([second.exited, sleep(20_000).then(() => 'still running')]);
    if (exitCode !== 1) second.proc.kill();
    assert.equal(exitCode, 1, `${ext}: the second copy ran: ${second.out()} ${second.err()}`);
    assert.equal(second.err().replace(/\r/g, ''), `Another '${name}' process is already running (pid ${first.proc.pid}).\n`);
    first.go();
    assert.equal(await first.exited, 0);
  }
});

// ---- One lock, one mutex, one info file ----

test("names that differ only in case are two locks with two info files: holder() and refusals name each one's own holder", async () => {
  const lower = unique('case-twin');
  const upper = lower.toUpperCase();
  const mixed = `${lower[0].toUpperCase()}${lower.slice(1)}`;
  const holders = [];
  for (const name of [lower, upper, mixed]) holders.push(await holder(name, { after: 'exit' }));
  const check = (live) => {
    for (const [i, name] of [lower, upper, mixed].entries()) {
      if (!live[i]) continue;
      assert.equal(Exclusive.holder(name).pid, holders[i].pid, name);
      assert.equal(Exclusive.holder(name).name, name);
      assert.throws(
        () => Exclusive.lock({ name }),
        (e) =>
          e instanceof CannotAcquireLock &&
          e.pid === holders[i].pid &&
          e.message === `Another '${name}' process is already running (pid ${holders[i].pid}).`,
        name
      );
    }
  };
  check([true, true, true]);
  // One ends (its cleanup removes its info file): the others' records stay.
  holders[0].go();
  assert.equal(await holders[0].exited, 0);
  assert.equal(Exclusive.holder(lower), null);
  check([false, true, true]);
  assert.deepEqual(
    windows()
      .list(undefined)
      .filter((n) => n.toLowerCase() === lower)
      .sort(),
    [upper, mixed].sort()
  );
  for (const h of holders.slice(1)) h.proc.kill();
});

test('dir equal to the default directory is the default lock (one mutex, one info file), however it is spelt', async () => {
  const name = unique('default-dir');
  const defaultDir = lockDirectory(undefined);
  for (const dir of [defaultDir, defaultDir.toUpperCase(), `${defaultDir}\\`]) {
    assert.equal(mutexName(name, dir), mutexName(name, undefined), dir);
  }
  for (const [holderDir, otherDir] of [
    [defaultDir, undefined],
    [undefined, defaultDir.toUpperCase()],
  ]) {
    const h = await holder(name, holderDir === undefined ? {} : { dir: holderDir });
    assert.equal(h.held.lockfile, `Local\\exclusive-process.${name}`);
    assert.throws(
      () => Exclusive.lock({ name, dir: otherDir }),
      (e) => e instanceof CannotAcquireLock && e.pid === h.pid
    );
    assert.equal(Exclusive.holder(name, { dir: otherDir }).pid, h.pid);
    h.proc.kill();
    await h.exited;
    Exclusive.lock({ name, dir: otherDir }).release();
  }
});

// Two copies of the package in one process (npm link, two versions nested in
// node_modules). A mutex may be taken again by the thread that owns it, so
// without the registry they share, the second copy would hold it too.
test('two copies of the package in one process: never two holders; a blocking wait fails at once; waits and an exact counter across both', async () => {
  const { cpSync, rmSync } = require('node:fs');
  const copy = join(import.meta.dirname, '..', '.copy-b');
  rmSync(copy, { recursive: true, force: true });
  cpSync(join(import.meta.dirname, '..', 'dist'), join(copy, 'dist'), { recursive: true });
  const B = require(join(copy, 'dist', 'index.js'));
  assert.notEqual(B.Exclusive, Exclusive);
  const name = unique('copies');
  const outcome = (call) => {
    try {
      call().release();
      return 'acquired';
    } catch (error) {
      return `${error.code} ${error.pid}`;
    }
  };
  const own = `ERR_LOCK_HELD ${process.pid}`;
  const held = Exclusive.lock({ name });
  assert.equal(
    outcome(() => B.Exclusive.lock({ name })),
    own
  );
  assert.equal(
    outcome(() => B.Exclusive.lock({ name, wait: true })),
    own
  );
  await assert.rejects(B.Exclusive.acquire({ name }), (error) => error.code === 'ERR_LOCK_HELD' && error.pid === process.pid);
  let got = false;
  const waiting = B.Exclusive.acquire({ name, wait: 20_000 }).then((lock) => ((got = true), lock));
  await sleep(200);
  assert.equal(got, false);
  held.release();
  const next = await waiting;
  assert.equal(
    outcome(() => Exclusive.lock({ name })),
    own
  );
  await next.release();
  // Both copies increment one counter, each increment spanning an await.
  let counter = 0;
  let running = 0;
  let maxRunning = 0;
  const body = async () => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    const value = counter;
    await sleep(1);
    counter = value + 1;
    running--;
  };
  const increments = [Exclusive, B.Exclusive].map((copy) => () => copy.run({ name, wait: 60_000 }, body));
  await Promise.all(Array.from({ length: 100 }, (_, i) => increments[i % 2]()));
  assert.equal(counter, 100);
  assert.equal(maxRunning, 1);
  assert.equal(Exclusive.holder(name), null);
  rmSync(copy, { recursive: true, force: true });
});

// While an async call of this process waits (on a waiter thread) for a lock
// another process holds, other calls of this process used to be refused
// naming this process. They name the holder; a synchronous one fails at once
// (the waiter thread could take the mutex while this thread blocks).
test('behind an async call waiting for a holder process, other calls are refused naming the holder, and the waiter still gets the lock', async () => {
  const name = unique('behind-waiter');
  const h = await holder(name, { how: 'lock', after: 'release' });
  const waiting = Exclusive.acquire({ name, wait: 20_000 });
  await sleep(200);
  const byHolder = (e) => e instanceof CannotAcquireLock && e.pid === h.pid;
  assert.throws(() => Exclusive.lock({ name }), byHolder);
  assert.throws(() => Exclusive.lock({ name, wait: true }), byHolder);
  await assert.rejects(Exclusive.acquire({ name }), byHolder);
  await assert.rejects(Exclusive.acquire({ name, wait: 100 }), byHolder);
  h.go();
  const lock = await waiting;
  assert.equal(Exclusive.holder(name).pid, process.pid);
  lock.release();
  h.proc.kill();
  await h.exited;
});
