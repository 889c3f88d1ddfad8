// The posix and portable drivers on one name, mixed in one process and
// across processes: they exclude each other (see portable.ts), so a wait
// through one for the other must behave as a wait through one driver does:
// the event loop runs, signals end it, and a thread never waits for itself.
import test from 'ava';
import { CannotAcquireLock, Exclusive } from '../src/index.js';
import { lockDir, start, type Finished } from './helpers/processes.js';
import { holdsIn, mostAtOnce } from './helpers/modes-suite.js';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Runs the fixture, killed after `ms`: the bugs it guards against hung the thread, where no test timeout can fire. */
async function runBounded(args: string[], ms = 30_000): Promise<Finished> {
  const child = start('mixed-drivers.ts', args);
  const timer = setTimeout(() => child.child.kill('SIGKILL'), ms);
  const finished = await child.finished;
  clearTimeout(timer);
  return finished;
}

/** The JSON lines a fixture printed, by scenario. */
function outcomes(stdout: string): Record<string, unknown> {
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const { scenario, outcome } = JSON.parse(line) as { scenario: string; outcome: unknown };
        return [scenario, outcome];
      })
  );
}

test("an asynchronous portable wait for a posix process's lock leaves the event loop running, and gets the lock when it is released", async (t) => {
  const dir = lockDir();
  const holder = start('hold.ts', ['cross', dir, 'posix']);
  t.teardown(() => holder.child.kill('SIGKILL'));
  await holder.waitFor('held');
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 50);
  // A timer ends the holder: it can only fire if the wait lets timers run.
  const end = setTimeout(() => holder.child.kill('SIGTERM'), 1_000);
  try {
    const lock = await Exclusive.acquire({ name: 'cross', dir, driver: 'portable', wait: 15_000 });
    t.is(lock.driver, 'portable');
    await lock.release();
  } finally {
    clearInterval(ticker);
    clearTimeout(end);
  }
  t.true(ticks >= 5, `${ticks} ticks of a 50 ms interval during a wait of more than 1 s`);
});

test('a synchronous wait through one driver while this thread holds the name through the other is refused at once as would-deadlock, both ways', async (t) => {
  const result = await runBounded(['sync', lockDir()]);
  t.deepEqual(outcomes(result.stdout), {
    'posix then portable wait true': 'would-deadlock',
    'posix then portable wait 500': 'would-deadlock',
    'portable then posix wait true': 'would-deadlock',
    'portable then posix wait 500': 'would-deadlock',
  });
});

test('asynchronous calls through both drivers in one process take turns: handed over on release, and 40 concurrent increments are exact', async (t) => {
  const result = await runBounded(['async', lockDir()]);
  t.deepEqual(outcomes(result.stdout), {
    'posix held, portable waits': 'portable',
    'portable held, posix waits': 'posix',
    '40 concurrent calls through both drivers': 40,
  });
});

/** True once process `pid` has an inotify instance: its wait loop watches the lock. */
function watching(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSync(join(`/proc/${pid}/fd`, fd)) === 'anon_inode:inotify');
  } catch {
    return false;
  }
}

test('the exclusive command waiting with --driver portable for a posix holder dies by SIGTERM and runs nothing', async (t) => {
  const dir = lockDir();
  const holder = start('hold.ts', ['cli', dir, 'posix']);
  t.teardown(() => holder.child.kill('SIGKILL'));
  await holder.waitFor('held');
  const waiter = start(join(__dirname, '..', 'src', 'cli.ts'), [
    '--dir',
    dir,
    '--driver',
    'portable',
    '-w',
    '0',
    'cli',
    '--',
    'echo',
    'RAN',
  ]);
  t.teardown(() => waiter.child.kill('SIGKILL'));
  while (!watching(waiter.child.pid!)) await new Promise((resolve) => setTimeout(resolve, 20));
  await new Promise((resolve) => setTimeout(resolve, 300)); // well into the wait
  waiter.child.kill('SIGTERM');
  // Then the holder lets go: a waiter that missed the signal would get the lock and run the command.
  await Promise.race([waiter.finished, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  holder.child.kill('SIGTERM');
  t.like(await waiter.finished, { code: null, signal: 'SIGTERM', stdout: '' });
});

/** Resolves once the modes.ts processes logging to `log` have entered `count` holds. */
async function entered(log: string, count: number): Promise<void> {
  const holds = (): number => (existsSync(log) ? readFileSync(log, 'utf8').split(' E ').length - 1 : 0);
  for (const deadline = Date.now() + 30_000; holds() < count;) {
    if (Date.now() > deadline) throw new Error(`${holds()} of ${count} holds entered within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("shared holders of one driver keep the other driver's writer out, both ways, naming them", async (t) => {
  const dir = lockDir();
  for (const [readers, writer] of [
    ['posix', 'portable'],
    ['portable', 'posix'],
  ] as const) {
    const log = join(dir, `log-${readers}`);
    const held = [0, 1].map(() => start('modes.ts', ['reader', dir, readers, log, '60000']));
    t.teardown(() => held.forEach((reader) => reader.child.kill('SIGKILL')));
    await entered(log, 2);
    const refused = t.throws(() => Exclusive.lock({ name: 'modes', dir, driver: writer }), { instanceOf: CannotAcquireLock }, writer);
    t.true(
      held.some((reader) => reader.child.pid === refused.pid),
      `${writer} writer refused naming pid ${refused.pid}`
    );
    held.forEach((reader) => reader.child.kill('SIGKILL'));
    await Promise.all(held.map((reader) => reader.finished));
  }
});

test('posix and portable readers and writers of one name for 4 s: no writer overlaps anyone, the counter is exact', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'log');
  const counter = join(dir, 'counter');
  writeFileSync(counter, '0');
  const processes = (['posix', 'portable'] as const).flatMap((driver) => [
    start('modes.ts', ['reader', dir, driver, log, '20', '4000']),
    start('modes.ts', ['reader', dir, driver, log, '20', '4000']),
    start('modes.ts', ['writer', dir, driver, log, counter, '4000']),
  ]);
  for (const result of await Promise.all(processes.map((p) => p.finished))) t.is(result.code, 0, result.stderr);
  // The fixture logs each hold with its pid: tell the drivers' writers apart by pid.
  const pids = new Map(processes.map((p, i) => [p.child.pid!, i < 3 ? 'posix' : 'portable']));
  const holds = holdsIn(log);
  const writes = holds.filter((hold) => hold.tag === 'W');
  const overlapping = writes.filter((write) => holds.some((other) => other !== write && write.from < other.to && other.from < write.to));
  t.log(
    `${holds.length - writes.length} shared holds (at most ${mostAtOnce(holds.filter((hold) => hold.tag === 'R'))} at once), ` +
      `${writes.filter((w) => pids.get(w.pid) === 'posix').length} posix and ${writes.filter((w) => pids.get(w.pid) === 'portable').length} portable exclusive`
  );
  t.deepEqual(overlapping, [], 'a writer overlapped another holder');
  t.true(writes.some((w) => pids.get(w.pid) === 'posix') && writes.some((w) => pids.get(w.pid) === 'portable'));
  t.true(
    holds.some((hold) => hold.tag === 'R' && pids.get(hold.pid) === 'posix') &&
      holds.some((hold) => hold.tag === 'R' && pids.get(hold.pid) === 'portable')
  );
  t.is(readFileSync(counter, 'utf8'), String(writes.length));
});

test("a writer of either driver waiting behind a continuous stream of the other driver's overlapping shared holds gets in after about one read hold", async (t) => {
  for (const [readers, writer] of [
    ['portable', 'posix'],
    ['posix', 'portable'],
  ] as const) {
    const dir = lockDir();
    const log = join(dir, 'log');
    // 4 readers of 150 ms holds, started 40 ms apart: some reader is always inside, for 4 s.
    const started: ReturnType<typeof start>[] = [];
    for (let i = 0; i < 4; i++) {
      started.push(start('modes.ts', ['reader', dir, readers, log, '150', '4000']));
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    started.push(start('modes.ts', ['late-writer', dir, writer, log, '1500']));
    const results = await Promise.all(started.map((p) => p.finished));
    for (const result of results) t.is(result.code, 0, result.stderr);
    const waited = Number(/waited (\d+)/.exec(results[4].stdout)![1]);
    t.log(`a ${writer} writer behind ${readers} readers waited ${waited} ms (longest read hold 150 ms)`);
    const holds = holdsIn(log);
    const write = holds.find((hold) => hold.tag === 'W')!;
    t.deepEqual(
      holds.filter((other) => other !== write && write.from < other.to && other.from < write.to),
      []
    );
    // Starved, it would wait until the stream ends (about 2.5 s): readers went on after it.
    t.true(
      holds.some((hold) => hold.tag === 'R' && hold.from > write.to),
      `${writer}: readers went on after the writer`
    );
    t.true(waited < 2000, `${writer}: waited ${waited} ms`);
  }
});
