// Shared and counted locks on the Windows driver, tested for real: a Windows node.exe under Wine, real named
// mutexes, real child processes (fixtures/modes.cjs). Run by test/drivers/windows/run.sh. The same cases as the
// posix and portable drivers' (test/helpers/modes-suite.ts, whose log format and holdsIn/mostAtOnce this repeats:
// that file is TypeScript for the Linux test run, and Windows node here runs the built package only).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, test } from 'node:test';

const require = createRequire(import.meta.url);
const { Exclusive, CannotAcquireLock } = require('../dist/index.js');

const FIXTURE = join(import.meta.dirname, 'fixtures', 'modes.cjs');
const OUT = mkdtempSync(join(process.env.EXCLUSIVE_WINE_OUT || tmpdir(), 'modes-'));
const children = new Set();
let serial = 0;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

after(() => {
  for (const child of children) child.kill();
});

/** A fresh lock directory (each test's 'modes' lock is its own). */
const lockDir = () => mkdtempSync(join(OUT, 'dir-'));

/** Starts fixtures/modes.cjs in a new Windows process; its stdout/stderr go to files (Windows node cannot write to a Linux pipe). */
function modes(role, dir, log, ...args) {
  const id = ++serial;
  const out = join(OUT, `modes-${id}.out`);
  const err = join(OUT, `modes-${id}.err`);
  const stdout = openSync(out, 'w');
  const stderr = openSync(err, 'w');
  const proc = spawn(process.execPath, [FIXTURE, role, dir, log, ...args.map(String)], { stdio: ['ignore', stdout, stderr] });
  closeSync(stdout);
  closeSync(stderr);
  children.add(proc);
  let exited = false;
  const finished = new Promise((resolve) =>
    proc.on('exit', (code) => {
      exited = true;
      children.delete(proc);
      resolve({ code, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') });
    })
  );
  const output = () => readFileSync(out, 'utf8');
  return {
    proc,
    finished,
    output,
    /** Resolves once stdout has a line starting with `word`. */
    async waitFor(word, ms = 60_000) {
      const deadline = Date.now() + ms;
      while (
        !output()
          .split('\n')
          .some((line) => line.startsWith(word))
      ) {
        if (Date.now() > deadline || exited)
          throw new Error(`no '${word}' from ${role} ${proc.pid}: ${output()} ${readFileSync(err, 'utf8')}`);
        await sleep(10);
      }
    },
  };
}

/** Starts `processes` (fixtures that print "ready") together: once all are loaded, creates <dir>/go. */
async function together(dir, processes) {
  await Promise.all(processes.map((p) => p.waitFor('ready')));
  writeFileSync(join(dir, 'go'), '');
  return Promise.all(processes.map((p) => p.finished));
}

function ran(results) {
  for (const result of results) assert.equal(result.code, 0, `${result.stdout} ${result.stderr}`);
}

/** The lines the processes logged in `log`-<pid>. */
function logged(log) {
  const prefix = `${basename(log)}-`;
  const files = readdirSync(dirname(log)).filter((file) => file.startsWith(prefix));
  return files.flatMap((file) => readFileSync(join(dirname(log), file), 'utf8').split('\n'));
}

/** The holds logged in `log`: { pid, tag, from, to } (ns). */
function holdsIn(log) {
  const open = new Map();
  const holds = [];
  for (const line of logged(log)) {
    if (line === '') continue;
    const [pid, what, tag, at] = line.split(' ');
    if (what === 'E') open.set(`${pid} ${tag}`, BigInt(at));
    else holds.push({ pid: Number(pid), tag, from: open.get(`${pid} ${tag}`), to: BigInt(at) });
  }
  return holds;
}

/** The most holds inside at once. */
function mostAtOnce(holds) {
  const events = holds.flatMap((hold) => [
    { at: hold.from, step: 1 },
    { at: hold.to, step: -1 },
  ]);
  events.sort((a, b) => (a.at === b.at ? a.step - b.step : a.at < b.at ? -1 : 1));
  let inside = 0;
  let most = 0;
  for (const event of events) most = Math.max(most, (inside += event.step));
  return most;
}

const overlaps = (a, b) => a !== b && a.from < b.to && b.from < a.to;

test('the windows driver declares shared and counted locks', () => {
  const { windows } = require('../dist/drivers/windows/index.js');
  assert.deepEqual(windows().modes, { shared: true, counted: true });
});

test('4 processes holding shared for 200 ms, started together, are inside at once', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'log');
  ran(
    await together(
      dir,
      Array.from({ length: 4 }, () => modes('reader', dir, log, 200))
    )
  );
  const holds = holdsIn(log);
  assert.equal(holds.length, 4);
  t.diagnostic(`most shared holders at once: ${mostAtOnce(holds)}`);
  assert.ok(mostAtOnce(holds) >= 2, `at most ${mostAtOnce(holds)} at once`);
});

test("4 readers and 2 writers for 4 s: no writer overlaps anyone, the writers' counter is exact", async (t) => {
  const dir = lockDir();
  const log = join(dir, 'log');
  const counter = join(dir, 'counter');
  writeFileSync(counter, '0');
  const readers = Array.from({ length: 4 }, () => modes('reader', dir, log, 20, 4000));
  const writers = Array.from({ length: 2 }, () => modes('writer', dir, log, counter, 4000));
  ran(await together(dir, [...readers, ...writers]));
  const holds = holdsIn(log);
  const writes = holds.filter((hold) => hold.tag === 'W');
  t.diagnostic(
    `${holds.length - writes.length} shared holds (at most ${mostAtOnce(holds.filter((h) => h.tag === 'R'))} at once), ${writes.length} exclusive`
  );
  assert.ok(writes.length > 0 && writes.length < holds.length);
  assert.ok(mostAtOnce(holds.filter((h) => h.tag === 'R')) >= 2, 'readers shared');
  assert.deepEqual(
    writes.filter((write) => holds.some((other) => overlaps(write, other))),
    [],
    'a writer overlapped another holder'
  );
  assert.equal(readFileSync(counter, 'utf8'), String(writes.length));
});

for (const how of ['async', 'sync']) {
  const form = how === 'async' ? 'an async writer (waiter thread)' : 'a synchronous writer polling (lock() with a finite wait)';
  test(`${form} waiting behind a continuous stream of overlapping shared holds gets in after about one read hold`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'log');
    // 4 readers of 150 ms holds, starting 40 ms apart: some reader is always inside, for 6 s (4 s on Linux: under
    // Wine an async writer first starts its waiter thread, 0.3-0.8 s on a loaded machine).
    const readers = Array.from({ length: 4 }, (_, i) => modes('reader', dir, log, 150, 6000, i * 40));
    const writer = modes('late-writer', dir, log, 1500, how);
    const results = await together(dir, [...readers, writer]);
    ran(results);
    const waited = Number(/waited (\d+)/.exec(results[4].stdout)[1]);
    t.diagnostic(`${how}: the writer waited ${waited} ms (longest read hold 150 ms)`);
    const holds = holdsIn(log);
    const write = holds.find((hold) => hold.tag === 'W');
    assert.deepEqual(
      holds.filter((other) => overlaps(write, other)),
      []
    );
    // Starved, it would wait until the stream ends (about 4.5 s): it got in while readers kept coming after it.
    assert.ok(
      holds.some((hold) => hold.tag === 'R' && hold.from > write.to),
      'readers went on after the writer: it was not starved'
    );
    assert.ok(waited < 2000, `waited ${waited} ms`);
  });
}

// 50 turns each, not 200 as on Linux, and 10 ms holds, not 1 ms: under Wine a way in (a few kernel calls, each a
// round trip to wineserver) takes about as long as a 1 ms hold, so 3 at once would be rare and the run long.
test('counted, 8 processes x 50 turns with limit 3: at most exactly 3 inside at once', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'log');
  const began = performance.now();
  ran(
    await together(
      dir,
      Array.from({ length: 8 }, () => modes('counted', dir, log, 3, 50, 10))
    )
  );
  const holds = holdsIn(log);
  t.diagnostic(`400 counted holds in ${Math.round(performance.now() - began)} ms (with start-up), at most ${mostAtOnce(holds)} at once`);
  assert.equal(holds.length, 400);
  assert.equal(mostAtOnce(holds), 3);
});

test('killing a slot holder (TerminateProcess) frees its slot for a waiting process at once; holders() lists the slots', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'log');
  const holders = Array.from({ length: 3 }, () => modes('slot', dir, log, 3));
  await Promise.all(holders.map((holder) => holder.waitFor('held')));
  const pids = holders.map((holder) => holder.proc.pid);
  const listed = Exclusive.holders('modes', { dir });
  assert.deepEqual(
    listed.map(({ slot, limit, mode }) => ({ slot, limit, mode: mode ?? 'exclusive' })),
    [0, 1, 2].map((slot) => ({ slot, limit: 3, mode: 'exclusive' }))
  );
  assert.deepEqual(listed.map((holder) => holder.pid).sort(), [...pids].sort());
  assert.ok(pids.includes(Exclusive.holder('modes', { dir }).pid));
  assert.throws(
    () => Exclusive.lock({ name: 'modes', dir, limit: 3 }),
    (e) =>
      e instanceof CannotAcquireLock &&
      e.message === `All 3 'modes' slots are taken (pids ${listed.map((holder) => holder.pid).join(', ')}).` &&
      [...e.pids].sort().join() === [...pids].sort().join()
  );
  // A counted wait (on a waiter thread) ends at its limit, and gives back what it took on the way.
  const timedOut = await Exclusive.acquire({ name: 'modes', dir, limit: 3, wait: 300 }).catch((error) => error);
  assert.ok(timedOut instanceof CannotAcquireLock && timedOut.reason === 'timed-out', String(timedOut));
  const waiter = modes('slot-waiter', dir, log, 3);
  await waiter.waitFor('waiting');
  await sleep(1500); // it is in its wait (Wine loads a process slowly)
  assert.equal(waiter.output().includes('got'), false, 'the waiter got a slot while all were taken');
  const killedAt = performance.now();
  const victim = listed[1].pid;
  holders.find((holder) => holder.proc.pid === victim).proc.kill(); // TerminateProcess: its slot mutex is abandoned
  await waiter.waitFor('got');
  t.diagnostic(`the waiter got the slot ${Math.round(performance.now() - killedAt)} ms after the kill (${waiter.output().trim()})`);
  assert.match(waiter.output(), /got \d+ slot 1/);
  assert.equal((await waiter.finished).code, 0);
  for (const holder of holders) holder.proc.kill();
});

test('holders that disagree get ERR_LOCK_MISMATCH across processes; an agreeing one gets in', async () => {
  const dir = lockDir();
  const holder = modes('slot', dir, join(dir, 'log'), 3);
  await holder.waitFor('held');
  const options = { name: 'modes', dir };
  for (const other of [{ limit: 2 }, {}, { mode: 'shared' }, { limit: 4, wait: 200 }]) {
    assert.throws(
      () => Exclusive.lock({ ...options, ...other }),
      (e) => e.code === 'ERR_LOCK_MISMATCH' && /The lock 'modes' is held counted \(limit 3\)/.test(e.message),
      JSON.stringify(other)
    );
  }
  // The waits (on a waiter thread) find it too.
  await assert.rejects(Exclusive.acquire({ ...options, limit: 2, wait: 2000 }), { code: 'ERR_LOCK_MISMATCH' });
  const agreeing = Exclusive.lock({ ...options, limit: 3 });
  assert.ok(agreeing.held);
  agreeing.release();
  holder.proc.kill();
  await holder.finished;
  // Once its holders are gone, a name may be used otherwise.
  Exclusive.lock({ ...options, mode: 'shared' }).release();
  Exclusive.lock(options).release();
});

test('shared holders: holders() lists each with its mode; a plain request waits for them, a counted one is a mismatch', async () => {
  const dir = lockDir();
  const log = join(dir, 'log');
  const readers = [modes('reader', dir, log, 3000), modes('reader', dir, log, 3000)];
  writeFileSync(join(dir, 'go'), '');
  await Promise.all(readers.map((r) => r.waitFor('ready')));
  await until(() => holdsStarted(log) === 2, readers);
  const pids = readers.map((reader) => reader.proc.pid).sort();
  const listed = Exclusive.holders('modes', { dir });
  assert.deepEqual(listed.map((holder) => holder.pid).sort(), pids);
  assert.deepEqual([...new Set(listed.map((holder) => holder.mode))], ['shared']);
  assert.ok(pids.includes(Exclusive.holder('modes', { dir }).pid));
  const refused = (() => {
    try {
      Exclusive.lock({ name: 'modes', dir });
    } catch (error) {
      return error;
    }
  })();
  assert.ok(refused instanceof CannotAcquireLock, String(refused));
  assert.deepEqual([...refused.pids].sort(), pids);
  assert.throws(() => Exclusive.lock({ name: 'modes', dir, limit: 2 }), { code: 'ERR_LOCK_MISMATCH' });
  // A writer's wait that ends (its limit, an abort) while it holds the name's mutex for the readers to leave gives it
  // back: another shared request then joins them at once.
  const timedOut = await Exclusive.acquire({ name: 'modes', dir, wait: 300 }).catch((error) => error);
  assert.ok(timedOut instanceof CannotAcquireLock && timedOut.reason === 'timed-out', String(timedOut));
  await assert.rejects(Exclusive.acquire({ name: 'modes', dir, wait: true, signal: AbortSignal.timeout(200) }), { name: 'TimeoutError' });
  Exclusive.lock({ name: 'modes', dir, mode: 'shared' }).release();
  // A writer waits (on its waiter thread) until both readers are out, and no longer.
  const began = performance.now();
  const write = await Exclusive.acquire({ name: 'modes', dir, wait: 20_000 });
  const ended = holdsIn(log);
  assert.equal(ended.length, 2, 'the writer got in before the readers left');
  write.release();
  ran(await Promise.all(readers.map((reader) => reader.finished)));
  assert.deepEqual(Exclusive.holders('modes', { dir }), []);
  // The readers' slot records are gone (the family file stays until a user of the name exits when R is free).
  assert.deepEqual(
    readdirSync(dir).filter((file) => file.includes('#r-')),
    []
  );
  assert.ok(performance.now() - began < 20_000);
});

test('a plain holder keeps shared requests out with the classic message; upgrade and limit with shared are refused', async () => {
  const dir = lockDir();
  const plain = modes('plain', dir, join(dir, 'log'));
  await plain.waitFor('held');
  await assert.rejects(Exclusive.acquire({ name: 'modes', dir, mode: 'shared', wait: true, signal: AbortSignal.timeout(200) }), {
    name: 'TimeoutError',
  });
  for (const other of [{ mode: 'shared' }, { mode: 'shared', wait: 300 }]) {
    const refused = await Exclusive.acquire({ name: 'modes', dir, ...other }).catch((error) => error);
    assert.ok(refused instanceof CannotAcquireLock, String(refused));
    if (other.wait === undefined) assert.equal(refused.message, `Another 'modes' process is already running (pid ${plain.proc.pid}).`);
    assert.equal(refused.pid, plain.proc.pid);
  }
  plain.proc.kill();
  await plain.finished;
  await Exclusive.run({ name: 'modes', dir, mode: 'shared' }, async () => {
    await assert.rejects(
      Exclusive.run({ name: 'modes', dir }, () => {}),
      { code: 'ERR_LOCK_UPGRADE' }
    );
  });
  assert.throws(() => Exclusive.lock({ name: 'modes', dir, mode: 'shared', limit: 2 }), { code: 'ERR_INVALID_ARG_VALUE' });
});

/** Resolves once `condition` holds; throws when one of `processes` ended first, or after 60 s. */
async function until(condition, processes) {
  const deadline = Date.now() + 60_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    const ended = await Promise.race([...processes.map((p) => p.finished), sleep(10).then(() => undefined)]);
    if (ended !== undefined && !condition()) throw new Error(`a process ended first: ${ended.stdout} ${ended.stderr}`);
  }
}

function holdsStarted(log) {
  return logged(log).filter((line) => line.includes(' E ')).length;
}

test('in one process: limit calls hold a slot each at once; counted and plain disagree both ways', async () => {
  const dir = lockDir();
  const options = { name: 'modes', dir, limit: 3 };
  const locks = await Promise.all([0, 1, 2].map(() => Exclusive.acquire(options)));
  const listed = Exclusive.holders('modes', { dir });
  assert.deepEqual(
    listed.map(({ pid, slot }) => ({ pid, slot })),
    [0, 1, 2].map((slot) => ({ pid: process.pid, slot }))
  );
  assert.throws(
    () => Exclusive.lock(options),
    (e) => e instanceof CannotAcquireLock && e.reason === 'held-in-process'
  );
  assert.throws(() => Exclusive.lock({ name: 'modes', dir }), { code: 'ERR_LOCK_MISMATCH' });
  for (const lock of locks) lock.release();
  const plain = Exclusive.lock({ name: 'modes', dir });
  assert.throws(() => Exclusive.lock(options), { code: 'ERR_LOCK_MISMATCH' });
  plain.release();
});

test('synchronous waits for ever block in the kernel: a shared one behind a killed plain holder, an exclusive one behind readers', async () => {
  const dir = lockDir();
  const log = join(dir, 'log');
  const plain = modes('plain', dir, log, 1000); // ends itself (TerminateProcess) 1 s after taking it: its mutex is abandoned
  await plain.waitFor('held');
  // Exclusive.lock() with wait: true on the main thread blocks in WaitForSingleObject (no JavaScript runs meanwhile).
  const shared = Exclusive.lock({ name: 'modes', dir, mode: 'shared', wait: true });
  assert.deepEqual(
    Exclusive.holders('modes', { dir }).map(({ pid, mode }) => ({ pid, mode })),
    [{ pid: process.pid, mode: 'shared' }]
  );
  shared.release();
  await plain.finished;
  const readers = [modes('reader', dir, log, 1500), modes('reader', dir, log, 1500)];
  writeFileSync(join(dir, 'go'), '');
  await until(() => holdsStarted(log) === 2, readers);
  const write = Exclusive.lock({ name: 'modes', dir, wait: true }); // WaitForMultipleObjects over the reader slots
  assert.equal(holdsIn(log).length, 2, 'the writer got in before the readers left');
  write.release();
  ran(await Promise.all(readers.map((reader) => reader.finished)));
});
