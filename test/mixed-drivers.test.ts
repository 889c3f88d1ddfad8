// The posix and portable drivers on one name, mixed in one process and
// across processes: they exclude each other (see portable.ts), so a wait
// through one for the other must behave as a wait through one driver does:
// the event loop runs, signals end it, and a thread never waits for itself.
import test from 'ava';
import { Exclusive } from '../src/index.js';
import { lockDir, start, type Finished } from './helpers/processes.js';
import { readdirSync, readlinkSync } from 'node:fs';
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
