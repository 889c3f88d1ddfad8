import test from 'ava';
import { readdirSync, readlinkSync, symlinkSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pbkdf2 } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { CannotAcquireLock, Exclusive, exclusive, type LockDriver } from '../src/index.js';
import { lockFiles } from './helpers/suite.js';
import { driverByName } from '../src/drivers/select.js';
import { registeredLocks } from '../src/core/registry.js';
import { lockDir, run, start } from './helpers/processes.js';

const tick = (ms = 1): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('100 concurrent async calls in one process run one at a time and lose no update', async (t) => {
  const dir = lockDir();
  let counter = 0;
  let running = 0;
  let maxRunning = 0;
  const increment = exclusive(
    async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      const value = counter;
      await tick();
      counter = value + 1;
      running--;
    },
    { name: 'in-process', dir, wait: true }
  );
  await Promise.all(Array.from({ length: 100 }, () => increment()));
  t.is(counter, 100);
  t.is(maxRunning, 1);
});

test('in-process waiters are served first come, first served', async (t) => {
  const dir = lockDir();
  const order: number[] = [];
  const job = exclusive(
    async (i: number) => {
      order.push(i);
      await tick();
    },
    { name: 'fifo', dir, wait: true }
  );
  await Promise.all(Array.from({ length: 20 }, (_, i) => job(i)));
  t.deepEqual(
    order,
    Array.from({ length: 20 }, (_, i) => i)
  );
});

test('a second call while the first runs fails at once with CannotAcquireLock naming this process', async (t) => {
  const dir = lockDir();
  const job = exclusive(async () => tick(50), { name: 'busy', dir });
  const first = job();
  const error = await t.throwsAsync(job(), { instanceOf: CannotAcquireLock });
  t.is(error?.code, 'ERR_LOCK_HELD');
  t.is(error?.pid, process.pid);
  t.is(error?.lockName, 'busy');
  t.is(error?.reason, 'held-in-process');
  t.true(error?.message.startsWith(`The lock 'busy' is held by another call in this process (pid ${process.pid}, `), error?.message);
  await first;
});

test('wait: ms gives up with CannotAcquireLock, and an aborted signal rejects with its reason', async (t) => {
  const dir = lockDir();
  await using held = await Exclusive.acquire({ name: 'timeout', dir });
  t.true(held.held);
  await t.throwsAsync(Exclusive.acquire({ name: 'timeout', dir, wait: 30 }), { instanceOf: CannotAcquireLock });
  const controller = new AbortController();
  const waiting = Exclusive.acquire({ name: 'timeout', dir, wait: true, signal: controller.signal });
  controller.abort(new Error('stop waiting'));
  await t.throwsAsync(waiting, { message: 'stop waiting' });
  await t.throwsAsync(Exclusive.acquire({ name: 'timeout', dir, signal: AbortSignal.abort(new Error('already')) }), { message: 'already' });
});

test('a held lock is handed to the next in-process waiter when released', async (t) => {
  const dir = lockDir();
  const first = await Exclusive.acquire({ name: 'handoff', dir });
  const second = Exclusive.acquire({ name: 'handoff', dir, wait: 5_000 });
  await tick(10);
  await first.release();
  const lock = await second;
  t.true(lock.held);
  t.is(Exclusive.holder('handoff', { dir })?.pid, process.pid);
  await lock.release();
  t.is(Exclusive.holder('handoff', { dir }), null);
});

test('the same call chain re-enters a lock it holds; other chains still wait', async (t) => {
  const dir = lockDir();
  const log: string[] = [];
  const inner = exclusive(
    async (who: string) => {
      log.push(`inner ${who}`);
    },
    { name: 'nested', dir, wait: true }
  );
  const outer = exclusive(
    async (who: string) => {
      log.push(`outer ${who} start`);
      await inner(who);
      await tick(5);
      log.push(`outer ${who} end`);
    },
    { name: 'nested', dir, wait: true }
  );
  await Promise.all([outer('a'), outer('b')]);
  t.deepEqual(log, ['outer a start', 'inner a', 'outer a end', 'outer b start', 'inner b', 'outer b end']);
  const recursive = exclusive((n: number): number => (n <= 0 ? 0 : n + recursive(n - 1)), { name: 'recursive', dir });
  t.is(recursive(10), 55);
});

test('synchronous functions stay synchronous; this, arguments, results and errors pass through', async (t) => {
  const dir = lockDir();
  const target = {
    base: 10,
    add: exclusive(
      function (this: { base: number }, x: number) {
        return this.base + x;
      },
      { name: 'sync', dir }
    ),
  };
  t.is(target.add(5), 15);
  t.is(target.add.name, '');
  const named = exclusive(
    function scale(x: number, y: number) {
      return x * y;
    },
    { name: 'sync', dir }
  );
  t.is(named.name, 'scale');
  t.is(named.length, 2);
  t.throws(
    exclusive(
      () => {
        throw new TypeError('sync failure');
      },
      { name: 'sync', dir }
    ),
    { instanceOf: TypeError, message: 'sync failure' }
  );
  t.is(Exclusive.holder('sync', { dir }), null, 'released after a throw');
  // A plain function returning a promise keeps the lock until it settles.
  let release!: () => void;
  const pending = exclusive(() => new Promise<string>((resolve) => (release = () => resolve('settled'))), { name: 'promise', dir })();
  t.is(Exclusive.holder('promise', { dir })?.pid, process.pid);
  release();
  t.is(await pending, 'settled');
  t.is(Exclusive.holder('promise', { dir }), null);
});

test('a synchronous wait on a lock held by another call chain of this thread fails instead of deadlocking', async (t) => {
  const dir = lockDir();
  await using held = await Exclusive.acquire({ name: 'deadlock', dir });
  t.truthy(held);
  const error = t.throws(() => Exclusive.lock({ name: 'deadlock', dir, wait: true }), { instanceOf: CannotAcquireLock });
  t.is(error?.pid, process.pid);
});

test('using and await using release at the end of the block', async (t) => {
  const dir = lockDir();
  {
    using lock = Exclusive.lock({ name: 'block', dir });
    t.true(lock.held);
    t.throws(() => Exclusive.lock({ name: 'block', dir }), { instanceOf: CannotAcquireLock });
  }
  t.is(Exclusive.holder('block', { dir }), null);
  {
    await using lock = await Exclusive.acquire({ name: 'block', dir });
    t.is(lock.lockfile, `${dir}/exclusive-process.block.lock`);
    t.is(lock.driver, 'posix');
  }
  t.is(Exclusive.holder('block', { dir }), null);
});

test('forever() makes every later acquisition in the process re-enter', async (t) => {
  const dir = lockDir();
  const lock = Exclusive.forever({ name: 'whole-process', dir });
  const job = exclusive(async () => 'ran', { name: 'whole-process', dir });
  t.is(await job(), 'ran');
  const inner = Exclusive.lock({ name: 'whole-process', dir });
  t.is(inner.name, 'whole-process');
  await lock.release();
  t.is(Exclusive.holder('whole-process', { dir })?.pid, process.pid, 'the re-entered handle still holds it');
  await inner.release();
  t.is(Exclusive.holder('whole-process', { dir }), null);
});

test('a re-entered call that outlives its caller keeps the lock until it ends', async (t) => {
  const dir = lockDir();
  const log: string[] = [];
  const child = exclusive(
    async () => {
      log.push('child in');
      await tick(150);
      log.push('child out');
    },
    { name: 'outlive', dir }
  );
  let started!: Promise<void>;
  const parent = exclusive(
    async () => {
      started = child(); // not awaited: re-enters now, ends after the parent
    },
    { name: 'outlive', dir }
  );
  await parent();
  t.is(Exclusive.holder('outlive', { dir })?.pid, process.pid, 'still held for the child');
  const other = exclusive(async () => void log.push('other'), { name: 'outlive', dir, wait: true });
  await Promise.all([started, other()]);
  t.deepEqual(log, ['child in', 'child out', 'other']);
  t.is(Exclusive.holder('outlive', { dir }), null);
});

test('a callback set up while holding that runs after the hold ended does not re-enter the next holder', async (t) => {
  const dir = lockDir();
  const log: string[] = [];
  let late: Promise<void> | undefined;
  let fired!: () => void;
  const timerRan = new Promise<void>((resolve) => (fired = resolve));
  const lateJob = exclusive(
    async () => {
      log.push('late in');
      await tick(20);
      log.push('late out');
    },
    { name: 'stale', dir, wait: true }
  );
  const first = exclusive(
    async () => {
      setTimeout(() => {
        late = lateJob(); // this call chain's hold has ended by now
        fired();
      }, 10);
    },
    { name: 'stale', dir, wait: true }
  );
  const second = exclusive(
    async () => {
      log.push('second in');
      await timerRan;
      await tick(50);
      log.push('second out');
    },
    { name: 'stale', dir, wait: true }
  );
  // second queues behind first, so the in-process entry passes straight from first to second.
  await Promise.all([first(), second()]);
  await late;
  t.deepEqual(log, ['second in', 'second out', 'late in', 'late out']);
});

test('a handle signal aborts on release; release is idempotent', async (t) => {
  const dir = lockDir();
  const lock = Exclusive.lock({ name: 'signal', dir });
  t.false(lock.signal.aborted);
  await lock.release();
  await lock.release();
  t.true(lock.signal.aborted);
  t.false(lock.held);
});

test('100 calls waiting on locks held by another process do not stall fs, dns or crypto', async (t) => {
  const dir = lockDir();
  const holders = Array.from({ length: 4 }, (_, i) => start('hold.ts', [`held-${i}`, dir]));
  await Promise.all(holders.map((h) => h.waitFor('held')));
  let acquired = 0;
  const waiters = Array.from({ length: 100 }, (_, i) =>
    Exclusive.acquire({ name: `held-${i % 4}`, dir, wait: true }).then(async (lock) => {
      acquired++;
      await lock.release();
    })
  );
  // libuv's pool has 4 threads: these would queue behind blocked waiters if any used it.
  await Promise.all([
    ...Array.from({ length: 8 }, () => readFile(__filename)),
    ...Array.from(
      { length: 8 },
      () => new Promise((resolve, reject) => pbkdf2('x', 'y', 1000, 32, 'sha256', (e, k) => (e ? reject(e) : resolve(k))))
    ),
    lookup('localhost'),
  ]);
  t.is(acquired, 0, 'the waiters are still waiting while the I/O completed');
  for (const h of holders) h.child.kill('SIGTERM');
  await Promise.all(waiters);
  t.is(acquired, 100);
});

test('released lock files are kept open for reuse, at most 32 idle per process', async (t) => {
  const dir = lockDir();
  // Synchronous releases ([Symbol.dispose]() throws a failure to release): no other test's lock may enter the idle cache in between.
  for (let i = 0; i < 40; i++) Exclusive.lock({ name: `many-${i}`, dir })[Symbol.dispose]();
  t.is(lockFiles(dir).length, 32);
});

test('exclusive.signal() inside an exclusive function aborts when its lock is released; outside it throws', async (t) => {
  const dir = lockDir();
  let inside: AbortSignal | undefined;
  await exclusive(
    async () => {
      inside = exclusive.signal();
      t.false(inside.aborted);
    },
    { name: 'signal-chain', dir }
  )();
  t.true(inside!.aborted);
  t.regex(String((inside!.reason as Error).message), /The lock 'signal-chain' was released/);
  t.throws(() => exclusive.signal(), { code: 'ERR_NOT_HOLDING', name: 'NotHoldingError' });
  await Exclusive.run({ name: 'signal-run', dir }, (lock) => t.is(exclusive.signal(), lock.signal));
});

test.serial('the in-process registry forgets free locks: 1 000 distinct names leave no entries behind', async (t) => {
  const dir = lockDir();
  const driver = driverByName(undefined);
  const before = registeredLocks(driver);
  const held = Exclusive.lock({ name: 'kept', dir });
  for (let i = 0; i < 1_000; i++) await exclusive(async () => {}, { name: `user-${i}`, dir })();
  for (let i = 0; i < 100; i++) Exclusive.holder(`asked-${i}`, { dir });
  const aborted = AbortSignal.abort(new Error('never started'));
  for (let i = 0; i < 100; i++) {
    await t.throwsAsync(Exclusive.acquire({ name: `aborted-${i}`, dir, wait: true, signal: aborted }), { message: 'never started' });
    t.throws(() => Exclusive.lock({ name: `aborted-sync-${i}`, dir, wait: 10, signal: aborted }), { message: 'never started' });
  }
  t.is(registeredLocks(driver), before + 1, 'only the held one');
  await held.release();
  t.is(registeredLocks(driver), before);
});

test('a synchronous wait that had to wait holds the lock like any other: the process sees it held, other processes too', async (t) => {
  const dir = lockDir();
  for (const wait of [10_000, true]) {
    // a polled wait, and a wait for ever blocked in the kernel
    const name = `waited-${wait}`;
    const holder = start('hold.ts', [name, dir, '', '300']); // exits, releasing, after 300 ms
    await holder.waitFor('held');
    const lock = Exclusive.lock({ name, dir, wait });
    t.throws(() => Exclusive.lock({ name, dir }), { instanceOf: CannotAcquireLock }, 'another call of this thread');
    await t.throwsAsync(Exclusive.acquire({ name, dir }), { instanceOf: CannotAcquireLock });
    t.like(JSON.parse((await run('try-lock.ts', [name, dir, ''])).stdout), { acquired: false, holder: process.pid }, 'another process');
    await lock.release();
    t.like(JSON.parse((await run('try-lock.ts', [name, dir, ''])).stdout), { acquired: true });
  }
});

test('the longest finite wait (2^31 - 1 ms) waits, in the queue and on the OS', async (t) => {
  const dir = lockDir();
  const held = await Exclusive.acquire({ name: 'longest', dir });
  const queued = Exclusive.acquire({ name: 'longest', dir, wait: 2 ** 31 - 1 });
  setTimeout(() => void held.release(), 50);
  await (await queued).release();
  const holder = start('hold.ts', ['longest', dir, '', '200']);
  await holder.waitFor('held');
  await (await Exclusive.acquire({ name: 'longest', dir, wait: 2 ** 31 - 1 })).release();
  t.pass();
});

test('a callback set by a nested (re-entered) call still re-enters while the outer call holds the lock', async (t) => {
  const dir = lockDir();
  const options = { name: 'nested-callback', dir };
  let later!: Promise<string>;
  const inner = exclusive(async () => 'inner re-entered', options);
  const schedule = (): void => {
    later = new Promise((resolve) => setTimeout(() => resolve(inner().catch((error: Error) => `inner failed: ${error.message}`)), 20));
  };
  const helper = exclusive(async () => schedule(), options); // its own hold ends before the callback runs
  t.is(
    await exclusive(async () => {
      await helper();
      return later;
    }, options)(),
    'inner re-entered'
  );
});

test('a driver whose release fails: the error reaches the caller, and the lock is not stuck in this process', async (t) => {
  let held = false;
  let failures = 0;
  const driver: LockDriver = {
    kind: 'memory',
    synchronous: true,
    locate: (name) => `memory:${name}`,
    tryLock: () => {
      if (held) return null;
      held = true;
      return {
        release: () => {
          held = false;
          if (failures-- > 0) throw new Error('EIO on unlock');
        },
      };
    },
    holder: (resource) => (held ? { name: resource, pid: process.pid } : null),
  };
  failures = 1;
  const first = await Exclusive.acquire({ name: 'x', driver });
  const waiter = Exclusive.acquire({ name: 'x', driver, wait: 5_000 });
  await t.throwsAsync(first.release(), { message: 'EIO on unlock' });
  await (await waiter).release(); // the queued caller got it
  failures = 1;
  t.throws(() => exclusive(() => 42, { name: 'x', driver })(), { message: 'EIO on unlock' }, 'thrown, not an unhandled rejection');
  failures = 1;
  t.throws(
    () => {
      using lock = Exclusive.lock({ name: 'x', driver });
      void lock;
    },
    { message: 'EIO on unlock' }
  );
  t.is(exclusive(() => 42, { name: 'x', driver })(), 42);
});

test('two spellings of one directory (through a symlink) are one lock: re-entered by the holding chain, refused to others', async (t) => {
  const real = lockDir();
  const alias = `${lockDir()}/alias`;
  symlinkSync(real, alias);
  const viaAlias = { name: 'spelled', dir: alias };
  await Exclusive.run({ name: 'spelled', dir: real }, async (outer) => {
    await Exclusive.run({ ...viaAlias, wait: true }, (inner) => t.is(inner.lockfile, outer.lockfile, 're-entered, not waiting for itself'));
  });
  const held = Exclusive.lock({ name: 'spelled', dir: real });
  const error = t.throws(
    () => Exclusive.lock({ ...viaAlias, wait: true }),
    { instanceOf: CannotAcquireLock },
    'refused at once, not blocked for ever'
  );
  t.is(error?.lockfile, held.lockfile);
  await held.release();
  t.is(
    Exclusive.lock({ name: 'spelled', dir: `${alias}/missing/sub` }).lockfile,
    `${real}/missing/sub/exclusive-process.spelled.lock`,
    'a directory still to be created, under the alias'
  );
});

test('attempts that fail on many names keep no descriptor per name', async (t) => {
  const dir = lockDir();
  const holder = start('hold-many.ts', [dir, '200']);
  t.teardown(() => holder.child.kill('SIGKILL'));
  await holder.waitFor('held');
  const descriptors = (): number => readdirSync('/proc/self/fd').length;
  const before = descriptors();
  for (let i = 0; i < 200; i++) t.throws(() => Exclusive.lock({ name: `busy-${i}`, dir }), { instanceOf: CannotAcquireLock });
  t.true(descriptors() - before <= 40, `${descriptors() - before} more descriptors`); // the idle cache keeps 32
});

test('waits on many names set up one watch each and keep each file open for the whole wait, and still find holders that die without a word', async (t) => {
  const dir = lockDir();
  const holder = start('hold-many.ts', [dir, '40']);
  t.teardown(() => holder.child.kill('SIGKILL'));
  await holder.waitFor('held');
  const posix = driverByName('posix');
  let watches = 0;
  const driver: LockDriver = {
    ...posix,
    watch(resource, onChange) {
      const stop = posix.watch!(resource, onChange);
      if (stop !== undefined) watches++;
      return stop;
    },
  };
  const waits = Array.from({ length: 40 }, (_, i) => Exclusive.acquire({ name: `busy-${i}`, dir, driver, wait: true }));
  await tick(1_500); // a dozen polls each: they start at 2 ms and double
  if (canWatch(dir)) {
    t.is(watches, 40, 'one watch per waiting name, however many polls');
    const open = readdirSync('/proc/self/fd').filter((fd) => readlinkQuietly(`/proc/self/fd/${fd}`).startsWith(`${dir}/`));
    t.is(open.length, 40, 'each waiting name keeps its lock file open (none evicted and reopened)');
  } else {
    t.log('this user has no inotify instance left (fs.inotify.max_user_instances): waits poll, watches not checked');
  }
  holder.child.kill('SIGKILL'); // no release, no file change: only the polls can find it
  for (const lock of await Promise.all(waits)) await lock.release();
  t.pass();
});

/** Whether this process can watch files (inotify instances are limited per user). */
function canWatch(dir: string): boolean {
  try {
    watch(dir, { persistent: false }).close();
    return true;
  } catch {
    return false;
  }
}

function readlinkQuietly(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

test('forever() leaves shutting down to an application SIGTERM handler added with once() before it', async (t) => {
  const dir = lockDir();
  const app = start('own-signal-handler.ts', [dir]);
  await app.waitFor('held');
  app.child.kill('SIGTERM');
  const result = await app.finished;
  t.is(result.code, 0, 'ended by the application, not by the signal');
  t.regex(result.stdout, /flushed\n$/);
  t.deepEqual(readdirSync(dir), [], 'and the lock file was removed at exit');
});

test('release() called again from the lock signal abort listener, which release() itself fires, returns the same settled release', async (t) => {
  const dir = lockDir();
  const lock = await Exclusive.acquire({ name: 'release-in-abort', dir });
  let again: Promise<void> | undefined;
  lock.signal.addEventListener('abort', () => {
    again = lock.release();
  });
  const first = lock.release();
  t.is(again, first);
  await first;
  t.false(lock.held);
  t.is(Exclusive.holder('release-in-abort', { dir }), null);
});
