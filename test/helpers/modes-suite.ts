import type { ExecutionContext, TestFn } from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CannotAcquireLock, Exclusive, type ExclusiveOptions } from '../../src/index.js';
import { lockDir, run, start, type Finished } from './processes.js';
import { driverOfSpec } from './driver-spec.js';

/** One logged hold of the modes.ts fixture: who, which role (R, W, C), from entry to exit (monotonic ns). */
export interface Hold {
  pid: number;
  tag: string;
  from: bigint;
  to: bigint;
}

/** The holds logged by modes.ts processes in `log`. */
export function holdsIn(log: string): Hold[] {
  const open = new Map<string, bigint>();
  const holds: Hold[] = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (line === '') continue;
    const [pid, what, tag, at] = line.split(' ');
    if (what === 'E') open.set(`${pid} ${tag}`, BigInt(at));
    else holds.push({ pid: Number(pid), tag, from: open.get(`${pid} ${tag}`)!, to: BigInt(at) });
  }
  return holds;
}

/** The most holds inside at once (of the tags given, default all). */
export function mostAtOnce(holds: readonly Hold[]): number {
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

const overlaps = (a: Hold, b: Hold): boolean => a !== b && a.from < b.to && b.from < a.to;

function ran(t: ExecutionContext, results: readonly Finished[]): void {
  for (const result of results) t.is(result.code, 0, result.stderr);
}

/**
 * Shared and counted locks across real processes (modes.ts), for a driver
 * that supports them. Called by test/drivers/<driver>.test.ts with the
 * driver's name, and for a driver that needs more (a server) with `spec`,
 * which gives what modes.ts and this process pass to driverOfSpec() once
 * the test runs. Checks in this process use the asynchronous forms, which
 * take every driver.
 */
export function modesSuite(anyTest: TestFn, driver: string, spec: () => string = () => driver): void {
  const test = anyTest.serial;
  const modes = (role: string, dir: string, log: string, ...args: string[]) => start('modes.ts', [role, dir, spec(), log, ...args]);
  const inTest = async (dir: string): Promise<{ dir: string; driver: ExclusiveOptions['driver'] }> => ({
    dir,
    driver: await driverOfSpec(spec(), dir),
  });

  test(`${driver} modes: 4 processes holding shared for 200 ms, started together, are inside at once`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'log');
    const readers = Array.from({ length: 4 }, () => modes('reader', dir, log, '200', '0', 'barrier'));
    await Promise.all(readers.map((reader) => reader.waitFor('ready', 60_000)));
    writeFileSync(join(dir, 'go'), ''); // all loaded: they ask for the lock together
    ran(t, await Promise.all(readers.map((reader) => reader.finished)));
    const holds = holdsIn(log);
    t.is(holds.length, 4);
    t.log(`most shared holders at once: ${mostAtOnce(holds)}`);
    t.true(mostAtOnce(holds) >= 2);
  });

  test(`${driver} modes: 4 readers and 2 writers for 5 s: no writer overlaps anyone, the writers' counter is exact`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'log');
    const counter = join(dir, 'counter');
    writeFileSync(counter, '0');
    const readers = Array.from({ length: 4 }, () => modes('reader', dir, log, '20', '5000'));
    const writers = Array.from({ length: 2 }, () => modes('writer', dir, log, counter, '5000'));
    ran(t, await Promise.all([...readers, ...writers].map((p) => p.finished)));
    const holds = holdsIn(log);
    const writes = holds.filter((hold) => hold.tag === 'W');
    t.log(
      `${holds.length - writes.length} shared holds (at most ${mostAtOnce(holds.filter((h) => h.tag === 'R'))} at once), ${writes.length} exclusive`
    );
    t.true(writes.length > 0 && writes.length < holds.length);
    t.deepEqual(
      writes.filter((write) => holds.some((other) => overlaps(write, other))),
      [],
      'a writer overlapped another holder'
    );
    t.is(readFileSync(counter, 'utf8'), String(writes.length));
  });

  test(`${driver} modes: a writer waiting behind a continuous stream of overlapping shared holds gets in after about one read hold`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'log');
    // 4 readers of 150 ms holds, started 40 ms apart: some reader is always inside, for 4 s.
    const readers: ReturnType<typeof modes>[] = [];
    for (let i = 0; i < 4; i++) {
      readers.push(modes('reader', dir, log, '150', '4000'));
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    const writer = modes('late-writer', dir, log, '1500');
    const results = await Promise.all([...readers, writer].map((p) => p.finished));
    ran(t, results);
    const waited = Number(/waited (\d+)/.exec(results[4].stdout)![1]);
    t.log(`the writer waited ${waited} ms (longest read hold 150 ms)`);
    const holds = holdsIn(log);
    const write = holds.find((hold) => hold.tag === 'W')!;
    t.deepEqual(
      holds.filter((other) => overlaps(write, other)),
      []
    );
    // Starved, it would wait until the stream ends (about 2.5 s): it got in while readers kept coming after it.
    t.true(
      holds.some((hold) => hold.tag === 'R' && hold.from > write.to),
      'readers went on after the writer: it was not starved'
    );
    t.true(waited < 2000, `waited ${waited} ms`);
  });

  test(`${driver} modes: counted, 8 processes x 200 turns with limit 3: at most exactly 3 inside at once`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'log');
    ran(t, await Promise.all(Array.from({ length: 8 }, () => modes('counted', dir, log, '3', '200').finished)));
    const holds = holdsIn(log);
    t.is(holds.length, 1600);
    t.is(mostAtOnce(holds), 3);
  });

  test(`${driver} modes: kill -9 of a slot holder frees its slot for a waiting process`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'log');
    const holders = Array.from({ length: 3 }, () => modes('slot', dir, log, '3'));
    t.teardown(() => holders.forEach((holder) => holder.child.kill('SIGKILL')));
    await Promise.all(holders.map((holder) => holder.waitFor('held')));
    const pids = holders.map((holder) => holder.child.pid!);
    const options = await inTest(dir);
    const listed = await Exclusive.holders('modes', options);
    t.deepEqual(
      listed.map(({ slot, limit, mode }) => ({ slot, limit, mode })),
      [0, 1, 2].map((slot) => ({ slot, limit: 3, mode: 'exclusive' }))
    );
    t.deepEqual(listed.map((holder) => holder.pid).sort(), [...pids].sort());
    const full = await t.throwsAsync(Exclusive.acquire({ name: 'modes', ...options, limit: 3 }), { instanceOf: CannotAcquireLock });
    // The pids in slot order.
    t.is(full.message, `All 3 'modes' slots are taken (pids ${listed.map((holder) => holder.pid).join(', ')}).`);
    t.deepEqual([...full.pids].sort(), [...pids].sort());
    const waiter = modes('slot-waiter', dir, log, '3');
    await waiter.waitFor('waiting');
    await new Promise((resolve) => setTimeout(resolve, 300)); // it is in its wait
    const killedAt = performance.now();
    holders[1].child.kill('SIGKILL');
    await waiter.waitFor('got');
    t.log(`the waiter got the slot ${Math.round(performance.now() - killedAt)} ms after the kill`);
    t.is((await waiter.finished).code, 0);
  });

  test(`${driver} modes: holders that disagree get ERR_LOCK_MISMATCH, across processes`, async (t) => {
    const dir = lockDir();
    const holder = modes('slot', dir, join(dir, 'log'), '3');
    t.teardown(() => holder.child.kill('SIGKILL'));
    await holder.waitFor('held');
    const options = await inTest(dir);
    for (const other of [{ limit: 2 }, {}, { mode: 'shared' as const }, { limit: 4, wait: 200 }]) {
      const error = await t.throwsAsync(
        Exclusive.acquire({ name: 'modes', ...options, ...other }),
        { code: 'ERR_LOCK_MISMATCH' },
        JSON.stringify(other)
      );
      t.regex(error?.message ?? '', /The lock 'modes' is held counted \(limit 3\)/);
    }
    const agreeing = await Exclusive.acquire({ name: 'modes', ...options, limit: 3 });
    t.true(agreeing.held);
    await agreeing.release();
  });

  test(`${driver} modes: Exclusive.holders() lists every shared holder with its mode; holder() names one`, async (t) => {
    const dir = lockDir();
    const log = join(dir, 'log');
    const readers = [modes('reader', dir, log, '1500'), modes('reader', dir, log, '1500')];
    t.teardown(() => readers.forEach((reader) => reader.child.kill('SIGKILL')));
    await waitUntil(() => holdsStarted(log) === 2);
    const pids = readers.map((reader) => reader.child.pid!).sort();
    const options = await inTest(dir);
    const listed = await Exclusive.holders('modes', options);
    t.deepEqual(listed.map((holder) => holder.pid).sort(), pids);
    t.deepEqual([...new Set(listed.map((holder) => holder.mode))], ['shared']);
    t.true(pids.includes((await Exclusive.holder('modes', options))!.pid!));
    const refused = await t.throwsAsync(Exclusive.acquire({ name: 'modes', ...options }), { instanceOf: CannotAcquireLock });
    t.deepEqual([...refused.pids].sort(), pids);
    const ended = await Promise.all(readers.map((reader) => reader.finished));
    ran(t, ended);
    t.deepEqual(await Exclusive.holders('modes', options), []);
  });

  test(`${driver} modes: a plain holder keeps another process's shared request out, with the classic message`, async (t) => {
    const dir = lockDir();
    await using lock = await Exclusive.acquire({ name: 'modes', ...(await inTest(dir)) });
    const result = await run('modes.ts', ['reader', dir, spec(), join(dir, 'log'), '10', '-1', 'nowait']);
    t.is(result.code, 1);
    t.regex(result.stderr, new RegExp(`Another 'modes' process is already running \\(pid ${process.pid}\\)\\.`));
    t.true(lock.held);
  });

  test(`${driver} modes: a counted request from another process against a plain holder gets ERR_LOCK_MISMATCH, not "slots taken"`, async (t) => {
    const dir = lockDir();
    await using lock = await Exclusive.acquire({ name: 'modes', ...(await inTest(dir)) });
    const result = await run('modes.ts', ['slot', dir, spec(), join(dir, 'log'), '3']);
    t.not(result.code, 0);
    t.regex(result.stderr, /ERR_LOCK_MISMATCH/);
    t.regex(result.stderr, /The lock 'modes' is held exclusive and this call asked for it counted \(limit 3\)/);
    t.true(lock.held);
  });
}

function holdsStarted(log: string): number {
  try {
    return readFileSync(log, 'utf8')
      .split('\n')
      .filter((line) => line.includes(' E ')).length;
  } catch {
    return 0;
  }
}

async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}
