import type { TestFn } from 'ava';
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { catchesSignal, lockDir, openFiles, run, start, type Finished, type Started } from './processes.js';
import { testRuntime } from './runtimes.js';

/**
 * The multi-process guarantees every file-based driver must show, run
 * against real processes. Called by test/posix.test.ts and
 * test/portable.test.ts with the driver's name.
 */
export function driverSuite(anyTest: TestFn, driver: 'posix' | 'portable'): void {
  // Serial: these start many processes, and the machine has two cores.
  const test = anyTest.serial;
  test(`${driver}: 8 processes x 500 read-modify-write increments end at exactly 4000`, async (t) => {
    const dir = lockDir();
    const counter = join(dir, 'counter');
    writeFileSync(counter, '0');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => run('counter.ts', [dir, driver, counter, '500', i % 2 === 0 ? 'async' : 'sync']))
    );
    for (const result of results) t.is(result.code, 0, result.stderr);
    t.is(readFileSync(counter, 'utf8'), '4000');
  });

  test(`${driver}: lock files removed and re-created all the time while others open them: 4 processes x 400 turns over 40 names, every count exact`, async (t) => {
    const dir = lockDir();
    const results = await Promise.all(Array.from({ length: 4 }, () => run('churn.ts', [dir, driver, '400'])));
    for (const result of results) t.is(result.code, 0, result.stderr);
    let total = 0;
    for (let i = 0; i < 40; i++) total += Number(readFileSync(join(dir, `counter-${i}`), 'utf8'));
    t.is(total, 1600);
  });

  test(`${driver}: 50 processes starting forever({ die: true }) at once: exactly one runs, 49 exit 1 with the message`, async (t) => {
    const dir = lockDir();
    const starters = Array.from({ length: 50 }, () => start('starter.ts', [dir, driver]));
    t.teardown(() => starters.forEach((s) => s.child.kill('SIGKILL')));
    await Promise.all(starters.map((s) => s.waitFor('ready', 60_000)));
    for (const s of starters) s.child.kill('SIGUSR1');
    const losers: Array<{ code: number | null; stderr: string }> = [];
    let winner: (typeof starters)[number] | undefined;
    await Promise.all(
      starters.map(async (s) => {
        const outcome = await s.waitFor('running', 60_000).then(
          () => 'won',
          () => 'lost'
        );
        if (outcome === 'won') winner = s;
        else losers.push(await s.finished);
      })
    );
    t.truthy(winner);
    t.is(losers.length, 49);
    const pid = winner!.child.pid;
    // Deno only: a loser sometimes cannot name the holder (README, "Bun and Deno": an open issue); exclusion is what holds.
    const named = testRuntime() === 'deno' ? [pid, 'unknown'] : [pid];
    for (const loser of losers) {
      t.is(loser.code, 1);
      t.true(
        named.some((p) => loser.stderr === `Another 'starter' process is already running (pid ${p}).\n`),
        loser.stderr
      );
    }
    const unnamed = losers.filter((l) => l.stderr.includes('(pid unknown)')).length;
    if (unnamed > 0) t.log(`${unnamed} of 49 losers could not name the holder`);
    winner!.child.kill('SIGTERM');
    const end = await winner!.finished;
    t.is(end.signal, 'SIGTERM');
    t.deepEqual(lockFiles(dir), [], 'the holder removed its lock file on SIGTERM');
  });

  test(`${driver}: kill -9 of the holder frees the lock for the next process at once, and wakes a waiter`, async (t) => {
    const dir = lockDir();
    const holder = start('hold.ts', ['killed', dir, driver]);
    await holder.waitFor('held');
    const refused = JSON.parse((await run('try-lock.ts', ['killed', dir, driver])).stdout);
    t.deepEqual(refused.acquired, false);
    t.is(refused.holder, holder.child.pid);
    const waiter = start('try-lock.ts', ['killed', dir, driver, 'true']);
    holder.child.kill('SIGKILL');
    await holder.finished;
    const next = JSON.parse((await run('try-lock.ts', ['killed', dir, driver])).stdout);
    const waited = JSON.parse((await waiter.finished).stdout);
    // The waiter and the next process race for the freed lock; each must have got it (one after the other).
    t.true(next.acquired || waited.acquired);
    t.true(waited.acquired, 'the waiter acquired after the kill');
  });

  test(`${driver}: a process that locked a file just removed by an exiting holder retries on the new file`, async (t) => {
    const dir = lockDir();
    for (const mode of ['wait-async', 'wait-sync', 'wait-async', 'wait-sync']) {
      const holder = start('exit-after-lock.ts', [dir, driver, 'wait']);
      await holder.waitFor('held');
      const waiter = start('hold.ts', ['ending', dir, driver, '', mode]);
      await new Promise((resolve) => setTimeout(resolve, 500)); // the waiter has opened the file and waits
      t.is(lockFiles(dir).length, 1);
      holder.child.kill('SIGTERM'); // releases, then unlinks while still holding
      await holder.finished;
      await waiter.waitFor('held');
      // The waiter's lock must be on the file that the path names now: a third process must be refused.
      const third = JSON.parse((await run('try-lock.ts', ['ending', dir, driver])).stdout);
      t.false(third.acquired, `${mode}: a third process got the lock while the waiter held it`);
      t.is(third.holder, waiter.child.pid);
      waiter.child.kill('SIGTERM');
      await waiter.finished;
    }
  });

  test(`${driver}: a lock file deleted by hand while free is noticed by a process that kept it open`, async (t) => {
    const dir = lockDir();
    const first = start('reacquire.ts', ['deleted', dir, driver], {}, 'pipe');
    await first.waitFor('released');
    for (const file of lockFiles(dir)) unlinkSync(join(dir, file));
    const second = start('hold.ts', ['deleted', dir, driver]);
    await second.waitFor('held');
    first.child.stdin!.end('go\n');
    const result = JSON.parse((await first.finished).stdout.split('\n')[1]);
    t.deepEqual(result, { acquired: false, holder: second.child.pid });
    second.child.kill('SIGTERM');
    await second.finished;
  });

  test(`${driver}: SIGTERM ends a process in a synchronous wait at once, and a released lock reaches such a waiter`, async (t) => {
    const dir = lockDir();
    const holder = start('hold.ts', ['second', dir, driver]);
    await holder.waitFor('held');
    const stopped = start('blocked-wait.ts', [dir, driver]);
    await stopped.waitFor('waiting');
    await untilInSynchronousWait(stopped.child.pid!, dir);
    stopped.child.kill('SIGTERM');
    t.is((await stopped.finished).signal, 'SIGTERM');
    const waiter = start('blocked-wait.ts', [dir, driver]);
    await waiter.waitFor('waiting');
    holder.child.kill('SIGTERM');
    await waiter.waitFor('got it');
    t.is((await waiter.finished).code, 0);
  });

  test(`${driver}: a worker thread waiting synchronously for ever holds up neither process.exit() nor worker.terminate(), and gets a released lock`, async (t) => {
    const dir = lockDir();
    const holder = start('hold.ts', ['in-worker', dir, driver]);
    await holder.waitFor('held');
    // The common shutdown: process.on('SIGTERM', () => process.exit(0)), while the other process holds on.
    const exiting = start('worker-wait.ts', ['in-worker', dir, driver, 'exit']);
    await exiting.waitFor('waiting');
    await sleep(500); // the worker is in its wait
    exiting.child.kill('SIGTERM');
    const exited = await endsWithin(exiting, 5_000);
    t.is(exited?.code, 0, 'process.exit(0) ended the process while its worker waited');
    const terminating = start('worker-wait.ts', ['in-worker', dir, driver, 'terminate']);
    const terminated = await endsWithin(terminating, 20_000);
    t.regex(terminated?.stdout ?? '', /waiting\nterminated\n/, 'worker.terminate() resolved');
    t.is(terminated?.code, 0);
    t.is(holder.child.exitCode, null, 'the holder held the lock all along');
    const acquiring = start('worker-wait.ts', ['in-worker', dir, driver, 'acquire']);
    await acquiring.waitFor('waiting');
    await sleep(500);
    holder.child.kill('SIGTERM');
    await acquiring.waitFor('got it');
    t.is((await acquiring.finished).code, 0);
  });

  test(`${driver}: a very long name (60 000 two-byte characters, a 120 KB record) is held against a second process`, async (t) => {
    const dir = lockDir();
    const name = 'é'.repeat(60_000);
    const holder = start('hold.ts', [name, dir, driver]);
    await holder.waitFor('held');
    const refused = JSON.parse((await run('try-lock.ts', [name, dir, driver])).stdout);
    t.false(refused.acquired);
    t.is(refused.holder, holder.child.pid);
    holder.child.kill('SIGTERM');
    await holder.finished;
    t.true(JSON.parse((await run('try-lock.ts', [name, dir, driver])).stdout).acquired);
  });

  test(`${driver}: the lock file is removed on normal exit, process.exit(), uncaught exceptions and unhandled rejections`, async (t) => {
    for (const how of ['return', 'exit', 'throw', 'reject']) {
      const dir = lockDir();
      const result = await run('exit-after-lock.ts', [dir, driver, how]);
      t.is(result.code, how === 'return' ? 0 : how === 'exit' ? 3 : 1, how);
      t.deepEqual(lockFiles(dir), [], how);
    }
  });

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    test(`${driver}: ${signal} releases and removes the lock file, and the process ends by ${signal}`, async (t) => {
      const dir = lockDir();
      const holder = start('exit-after-lock.ts', [dir, driver, 'wait']);
      await holder.waitFor('held');
      t.is(lockFiles(dir).length, 1);
      holder.child.kill(signal);
      const end = await holder.finished;
      t.is(end.signal, signal);
      t.deepEqual(lockFiles(dir), []);
      const next = JSON.parse((await run('try-lock.ts', ['ending', dir, driver])).stdout);
      t.true(next.acquired);
    });
  }
}

/** The process's end if it comes within `ms`; else kills it and resolves undefined. */
async function endsWithin(started: Started, ms: number): Promise<Finished | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    started.finished,
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
  ]);
  clearTimeout(timer);
  if (ended === undefined) {
    started.child.kill('SIGKILL');
    await started.finished;
  }
  return ended;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves once the process waits synchronously for the lock 'second'. In
 * Node and Bun: once it no longer catches SIGTERM, which the wait arranges by
 * detaching the library's handlers. Deno keeps its own handler installed once
 * a listener was ever added (it ends the process itself when none is left),
 * so there: once the process has the lock file open, and a moment more.
 */
async function untilInSynchronousWait(pid: number, dir: string): Promise<void> {
  if (testRuntime() !== 'deno') {
    while (catchesSignal(pid, 15)) await sleep(10);
    return;
  }
  while (!openFiles(pid).some((file) => file.startsWith(dir) && file.includes('second'))) await sleep(10);
  await sleep(300);
}

/** Lock files (the posix driver's `.lock`, the portable driver's `.pid`) left in a test directory. */
export function lockFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((file) => file.endsWith('.lock') || file.endsWith('.pid')) : [];
}
