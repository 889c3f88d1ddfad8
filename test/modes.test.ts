// Shared and counted locks within one process: options, re-entry, in-process sharing and slots, typed errors.
import test from 'ava';
import { CannotAcquireLock, Exclusive, exclusive, LockDriverError, LockModeError, type LockDriver } from '../src/index.js';
import { lockDir } from './helpers/processes.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('mode and limit are validated eagerly on every form; limit with shared is refused', async (t) => {
  const forms: Array<[string, (options: object) => unknown]> = [
    ['lock', (o) => Exclusive.lock(o)],
    ['acquire', (o) => Exclusive.acquire(o)],
    ['run', (o) => Exclusive.run(o, () => {})],
    ['forever', (o) => Exclusive.forever(o)],
    ['exclusive(fn)', (o) => exclusive(() => {}, o)],
    ['decorator', (o) => Exclusive(o)],
  ];
  const cases: Array<[object, { code: string; message?: string | RegExp }]> = [
    [{ mode: 'read' }, { code: 'ERR_INVALID_ARG_VALUE', message: `options.mode must be 'exclusive' or 'shared', got string "read"` }],
    [{ limit: 0 }, { code: 'ERR_INVALID_ARG_VALUE', message: 'options.limit must be an integer from 1 to 64, got 0' }],
    [{ limit: 65 }, { code: 'ERR_INVALID_ARG_VALUE' }],
    [{ limit: 2.5 }, { code: 'ERR_INVALID_ARG_VALUE' }],
    [{ limit: '3' }, { code: 'ERR_INVALID_ARG_TYPE' }],
    [
      { mode: 'shared', limit: 2 },
      { code: 'ERR_INVALID_ARG_VALUE', message: /options.limit cannot be combined with mode: 'shared'/ },
    ],
  ];
  for (const [form, call] of forms) {
    for (const [options, expected] of cases) {
      const attempt = (): unknown => call({ name: 'v', ...options });
      // run() rejects (it is async), the others throw: all before any lock is tried.
      if (form === 'run') await t.throwsAsync(attempt as () => Promise<unknown>, expected, form);
      else t.throws(attempt, expected, form);
    }
  }
  t.notThrows(() => exclusive(() => {}, { name: 'v', mode: 'shared', limit: 1 }));
});

test('a driver that declares no modes refuses shared and counted requests with ERR_MODE_UNSUPPORTED, naming it, before any attempt', (t) => {
  let attempts = 0;
  const plain: LockDriver = {
    kind: 'plain-test',
    synchronous: true,
    locate: (name) => name,
    tryLock: () => (attempts++, { release: () => {} }),
    holder: () => null,
  };
  for (const options of [{ mode: 'shared' as const }, { limit: 3 }]) {
    const error = t.throws(() => Exclusive.lock({ name: 'u', driver: plain, ...options }), { instanceOf: LockDriverError });
    t.is(error.code, 'ERR_MODE_UNSUPPORTED');
    t.regex(error.message, /^The plain-test driver does not support/);
  }
  t.is(attempts, 0);
});

test('a call chain holding a lock exclusively may take it shared; one holding it shared asking exclusively gets ERR_LOCK_UPGRADE at once', async (t) => {
  const dir = lockDir();
  await Exclusive.run({ name: 'db', dir }, async () => {
    const inner = await Exclusive.run({ name: 'db', dir, mode: 'shared' }, () => 'inside');
    t.is(inner, 'inside');
  });
  const error = await t.throwsAsync(
    Exclusive.run({ name: 'db', dir, mode: 'shared', wait: true }, () => Exclusive.run({ name: 'db', dir, wait: true }, () => {})),
    { instanceOf: LockModeError }
  );
  t.is(error.code, 'ERR_LOCK_UPGRADE');
  t.is(error.lockName, 'db');
  const upgradeSync = exclusive(() => Exclusive.lock({ name: 'db', dir, wait: true }), { name: 'db', dir, mode: 'shared' });
  t.throws(upgradeSync, { instanceOf: LockModeError, code: 'ERR_LOCK_UPGRADE' });
  // A counted hold re-entered with another limit: a mismatch.
  const counted = await t.throwsAsync(
    Exclusive.run({ name: 'enc', dir, limit: 3 }, () => Exclusive.run({ name: 'enc', dir, limit: 2 }, () => {}))
  );
  t.is((counted as LockModeError | undefined)?.code, 'ERR_LOCK_MISMATCH');
});

test('in one process: shared calls run together, an exclusive call waits for them and shared calls after it wait for it', async (t) => {
  const dir = lockDir();
  const events: string[] = [];
  let inside = 0;
  let most = 0;
  const read = exclusive(
    async (id: string) => {
      inside++;
      most = Math.max(most, inside);
      events.push(`+${id}`);
      await sleep(60);
      events.push(`-${id}`);
      inside--;
    },
    { name: 'db', dir, mode: 'shared', wait: true }
  );
  const write = exclusive(
    async () => {
      events.push('+W');
      t.is(inside, 0);
      await sleep(20);
      events.push('-W');
    },
    { name: 'db', dir, wait: true }
  );
  const first = [read('a'), read('b')];
  await sleep(10);
  const writer = write();
  await sleep(5);
  const late = read('c'); // after the writer: waits for it, though a shared hold is on
  await Promise.all([...first, writer, late]);
  t.is(most, 2);
  t.deepEqual(events.slice(events.indexOf('+W')), ['+W', '-W', '+c', '-c']);
});

test('in one process: a counted lock lets limit calls in at once, the next waits, and with wait: false it is refused saying all slots are taken', async (t) => {
  const dir = lockDir();
  let inside = 0;
  let most = 0;
  const encode = exclusive(
    async () => {
      inside++;
      most = Math.max(most, inside);
      await sleep(40);
      inside--;
    },
    { name: 'encode', dir, limit: 3, wait: true }
  );
  await Promise.all(Array.from({ length: 7 }, () => encode()));
  t.is(most, 3);
  const held = await Promise.all([0, 1, 2].map(() => Exclusive.acquire({ name: 'encode', dir, limit: 3 })));
  const error = await t.throwsAsync(Exclusive.acquire({ name: 'encode', dir, limit: 3 }), { instanceOf: CannotAcquireLock });
  t.is(error.reason, 'held-in-process');
  t.deepEqual(error.pids, [process.pid]);
  t.deepEqual(
    Exclusive.holders('encode', { dir }).map(({ pid, slot, limit }) => ({ pid, slot, limit })),
    [0, 1, 2].map((slot) => ({ pid: process.pid, slot, limit: 3 }))
  );
  await Promise.all(held.map((lock) => lock.release()));
  t.deepEqual(Exclusive.holders('encode', { dir }), []);
});

for (const driver of ['posix', 'portable'] as const) {
  test(`holders that disagree in one process: a counted lock against a plain one, both ways, gets ERR_LOCK_MISMATCH (${driver})`, (t) => {
    const dir = lockDir();
    {
      using _counted = Exclusive.lock({ name: 'x', dir, driver, limit: 2 });
      t.throws(() => Exclusive.lock({ name: 'x', dir, driver }), { code: 'ERR_LOCK_MISMATCH' });
      t.throws(() => Exclusive.lock({ name: 'x', dir, driver, mode: 'shared' }), { code: 'ERR_LOCK_MISMATCH' });
    }
    {
      using _plain = Exclusive.lock({ name: 'x', dir, driver });
      t.throws(() => Exclusive.lock({ name: 'x', dir, driver, limit: 2 }), { code: 'ERR_LOCK_MISMATCH' });
    }
    using _free = Exclusive.lock({ name: 'x', dir, driver, limit: 3 }); // free again: any limit may start it
    t.pass();
  });
}

test('Exclusive.holders() of a free lock is [] and of a plain one its holder, mode exclusive; holder() is unchanged', (t) => {
  const dir = lockDir();
  t.deepEqual(Exclusive.holders('free', { dir }), []);
  using _lock = Exclusive.lock({ name: 'plain', dir });
  const [only, ...rest] = Exclusive.holders('plain', { dir });
  t.deepEqual(rest, []);
  t.is(only.pid, process.pid);
  t.is(only.mode, 'exclusive');
  const holder = Exclusive.holder('plain', { dir })!;
  t.is(holder.pid, process.pid);
  t.false('mode' in holder);
});

test('in one process: shared callers queued behind an exclusive hold all get in when it ends, and leave the lock free', async (t) => {
  const dir = lockDir();
  const blocker = Exclusive.lock({ name: 'db', dir });
  const queued = Array.from({ length: 3 }, (_, i) => Exclusive.run({ name: 'db', dir, mode: 'shared', wait: 5_000 }, () => i));
  await sleep(20);
  void blocker.release(); // the first queued shared caller gets the turn; the others join its hold (or start over if it ended)
  t.deepEqual(await Promise.all(queued), [0, 1, 2]);
  t.deepEqual(Exclusive.holders('db', { dir }), []);
});
