// The conflict policy: each case of CannotAcquireLock by its `reason` and its
// exact message, with a real holder process where the case involves one, in
// the synchronous and asynchronous forms; and `die`, which ends the process
// only when another process holds the lock (a server survives a second
// concurrent request to its `die: true` method).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { CannotAcquireLock, Exclusive, exclusive } from '../src/index.js';
import { lockDir, run, start, type Started } from './helpers/processes.js';

/** The holder record in the lock file, as written (the ground truth the messages quote). */
function recordOnDisk(dir: string, name: string): { pid: number; command: string; since: string } {
  const text = readFileSync(`${dir}/exclusive-process.${name}.lock`, 'utf8');
  return JSON.parse(text.slice(0, text.indexOf('\n'))) as { pid: number; command: string; since: string };
}

/** `pid 4242, \`node x.js\`, since <ISO>` for the holder recorded on disk. */
function who(dir: string, name: string): string {
  const { pid, command, since } = recordOnDisk(dir, name);
  return `pid ${pid}, \`${command}\`, since ${since}`;
}

const timedOut = (name: string, after: string, holder: string): string =>
  `Gave up waiting for the lock '${name}' after ${after}: it is still held by ${holder}. Wait longer (\`wait\`), or find out why the holder keeps it so long.`;

/** The held-in-process message; `synchronous`: the refused call could not wait either, as this thread holds the lock. */
const heldInProcess = (name: string, holder: string, synchronous = false): string =>
  `The lock '${name}' is held by another call in this process (${holder}). ` +
  (synchronous
    ? 'To queue this call behind it, pass `wait` in an async function or to Exclusive.acquire() (a synchronous wait would block the thread that must release it), or do not start it again before that call ends.'
    : 'Pass `wait` to queue this call behind it, or do not start it again before that call ends.');

/** A real process holding `name` until killed. */
async function holderProcess(name: string, dir: string): Promise<Started & { pid: number }> {
  const holder = start('hold.ts', [name, dir]);
  await holder.waitFor('held');
  return Object.assign(holder, { pid: holder.child.pid! });
}

async function stop(holder: Started): Promise<void> {
  holder.child.kill('SIGKILL');
  await holder.finished;
}

test("held-elsewhere: another process holds it and the call does not wait; the Python model's message, sync and async", async (t) => {
  const dir = lockDir();
  const holder = await holderProcess('elsewhere', dir);
  try {
    const expected = {
      code: 'ERR_LOCK_HELD',
      reason: 'held-elsewhere',
      pid: holder.pid,
      message: `Another 'elsewhere' process is already running (pid ${holder.pid}).`,
    };
    const sync = t.throws(() => Exclusive.lock({ name: 'elsewhere', dir }), { instanceOf: CannotAcquireLock });
    const async = await t.throwsAsync(Exclusive.acquire({ name: 'elsewhere', dir }), { instanceOf: CannotAcquireLock });
    for (const error of [sync, async]) {
      t.like(error, expected);
      t.like(error?.holder, { pid: holder.pid, command: recordOnDisk(dir, 'elsewhere').command });
      t.is(error?.holder?.since?.toISOString(), recordOnDisk(dir, 'elsewhere').since);
    }
  } finally {
    await stop(holder);
  }
});

test("timed-out: a wait on another process's lock ran out; the message names the holder, its command, since when, and the wait", async (t) => {
  const dir = lockDir();
  const holder = await holderProcess('slow', dir);
  try {
    const message = (after: string): string => timedOut('slow', after, `another process (${who(dir, 'slow')})`);
    const sync = t.throws(() => Exclusive.lock({ name: 'slow', dir, wait: 300 }), { instanceOf: CannotAcquireLock });
    t.like(sync, { code: 'ERR_LOCK_HELD', reason: 'timed-out', pid: holder.pid, message: message('300 ms') });
    const async = await t.throwsAsync(Exclusive.acquire({ name: 'slow', dir, wait: 1_500 }), { instanceOf: CannotAcquireLock });
    t.like(async, { code: 'ERR_LOCK_HELD', reason: 'timed-out', pid: holder.pid, message: message('1.5 s') });
    t.like(async?.holder, { pid: holder.pid, command: recordOnDisk(dir, 'slow').command });
  } finally {
    await stop(holder);
  }
});

test("timed-out with die: a wait on another process's lock that ran out still exits with exitCode, printing the timed-out message", async (t) => {
  const dir = lockDir();
  const holder = await holderProcess('slow-die', dir);
  try {
    for (const form of ['sync', 'async']) {
      const result = await run('conflict.ts', ['slow-die', dir, form, JSON.stringify({ die: true, exitCode: 3, wait: 200 })]);
      const expected = `${timedOut('slow-die', '200 ms', `another process (${who(dir, 'slow-die')})`)}\n`;
      t.deepEqual({ code: result.code, stdout: result.stdout, stderr: result.stderr }, { code: 3, stdout: '', stderr: expected }, form);
    }
  } finally {
    await stop(holder);
  }
});

test('held-in-process: another call of this process holds it and the call does not wait, sync and async', async (t) => {
  const dir = lockDir();
  let release!: () => void;
  const job = exclusive(() => new Promise<void>((resolve) => (release = resolve)), { name: 'own', dir, async: true });
  const first = job();
  await new Promise((resolve) => setTimeout(resolve, 20));
  const expected = { code: 'ERR_LOCK_HELD', reason: 'held-in-process', pid: process.pid, message: heldInProcess('own', who(dir, 'own')) };
  t.like(await t.throwsAsync(job(), { instanceOf: CannotAcquireLock }), expected);
  t.like(await t.throwsAsync(Exclusive.acquire({ name: 'own', dir }), { instanceOf: CannotAcquireLock }), expected);
  const sync = t.throws(() => Exclusive.lock({ name: 'own', dir }), { instanceOf: CannotAcquireLock });
  t.like(
    sync,
    { ...expected, message: heldInProcess('own', who(dir, 'own'), true) },
    'a synchronous call is told how to wait without blocking'
  );
  t.like(sync?.holder, { pid: process.pid, command: recordOnDisk(dir, 'own').command });
  release();
  await first;
});

test('timed-out on a lock another call of this process holds: the message says so', async (t) => {
  const dir = lockDir();
  await using held = await Exclusive.acquire({ name: 'own-slow', dir });
  t.true(held.held);
  const error = await t.throwsAsync(Exclusive.acquire({ name: 'own-slow', dir, wait: 50 }), { instanceOf: CannotAcquireLock });
  t.like(error, {
    code: 'ERR_LOCK_HELD',
    reason: 'timed-out',
    pid: process.pid,
    message: timedOut('own-slow', '50 ms', `another call in this process (${who(dir, 'own-slow')})`),
  });
});

test('would-deadlock: a synchronous wait on a lock this thread holds is refused at once, saying why and what to do', async (t) => {
  const dir = lockDir();
  await using held = await Exclusive.acquire({ name: 'self', dir });
  t.true(held.held);
  for (const wait of [true, 10_000]) {
    const began = performance.now();
    const error = t.throws(() => Exclusive.lock({ name: 'self', dir, wait }), { instanceOf: CannotAcquireLock });
    t.true(performance.now() - began < 5_000, 'refused at once, not after the wait');
    t.like(error, {
      code: 'ERR_LOCK_HELD',
      reason: 'would-deadlock',
      pid: process.pid,
      message:
        `Waiting for the lock 'self' would deadlock: this thread already holds it (${who(dir, 'self')}), and a synchronous wait blocks the thread that must release it. ` +
        'Release it first, or take it in an async function or with Exclusive.acquire(), which wait without blocking the thread.',
    });
  }
});

/** GET on the server: status and body; a dead server rejects. */
async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

test('die on a server: a second concurrent request to a die: true method gets CannotAcquireLock and the server survives; a second process still dies', async (t) => {
  const dir = lockDir();
  const server = start('die-server.ts', ['migrate', dir]);
  try {
    const port = Number(/listening (\d+)/.exec(await server.waitFor('listening'))![1]);
    const pid = server.child.pid!;
    for (const route of ['decorated', 'wrapped', 'plain']) {
      const name = `migrate-${route}`;
      const first = get(port, `/${route}`);
      await server.waitFor(`holding ${route}`);
      const second = await get(port, `/${route}`).catch((error: unknown) => ({ status: 0, body: `the server died: ${String(error)}` }));
      t.is(second.status, 409, second.body);
      if (second.status !== 409) return;
      // A plain function that returned a promise: the wrapper explains what is likely (its `async` compiled away).
      const message =
        route === 'plain'
          ? `'${name}' is held by this process: an earlier call of this function returned a promise that has not settled. ` +
            'If the function is asynchronous (its `async` compiled away by a TypeScript target of ES2016 or lower, or an older Babel or SWC target), pass `async: true` in its options.'
          : heldInProcess(name, who(dir, name));
      t.deepEqual(JSON.parse(second.body), { code: 'ERR_LOCK_HELD', reason: 'held-in-process', pid, message }, route);
      for (const form of ['sync', 'async']) {
        const other = await run('conflict.ts', [name, dir, form, JSON.stringify({ die: true })]);
        t.deepEqual(
          { code: other.code, stdout: other.stdout, stderr: other.stderr },
          { code: 1, stdout: '', stderr: `Another '${name}' process is already running (pid ${pid}).\n` },
          `${route}, another process (${form})`
        );
      }
      await get(port, '/finish');
      t.deepEqual(await first, { status: 200, body: 'done' }, `${route}: the first request completes`);
    }
    t.deepEqual(await get(port, '/health'), { status: 200, body: '' }, 'the server still runs');
    t.is(server.child.exitCode, null);
  } finally {
    await stop(server);
  }
});
