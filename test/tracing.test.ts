import anyTest, { type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel';
import { Client } from 'pg';
import {
  CannotAcquireLock,
  CHANNELS,
  Exclusive,
  LockLostError,
  type AcquireContext,
  type ExclusiveLock,
  type LostMessage,
  type ReleaseMessage,
} from '../src/index.js';
import { postgres } from '../src/postgres.js';
import { aborted, startPostgres, type PostgresServer } from './helpers/postgres-server.js';
import { FIXTURES, lockDir, ROOT, start, type Started } from './helpers/processes.js';

// The diagnostics channels (exclusive-process:acquire, :release, :lost) and
// the NODE_DEBUG=exclusive-process log, seen from a subscriber, against real
// holders: another process, a PostgreSQL server whose session is ended.
// Serial: the channels are process-wide.
const test = (anyTest as TestFn<unknown>).serial;

/** One event seen on a channel, with a copy of the context's fields at that moment. */
interface Seen {
  readonly event: string;
  readonly context: Record<string, unknown>;
}

/** Records the acquire, release and lost events of lock `name` while `fn` runs. */
async function recording(name: string, fn: () => unknown): Promise<Seen[]> {
  const seen: Seen[] = [];
  const acquire = tracingChannel<unknown, AcquireContext>(CHANNELS.acquire);
  const on =
    (event: string) =>
    (message: unknown): void => {
      const context = message as Record<string, unknown>;
      if (context.name === name) seen.push({ event, context: { ...context } });
    };
  const handlers = {
    start: on('start'),
    end: on('end'),
    asyncStart: on('asyncStart'),
    asyncEnd: on('asyncEnd'),
    error: on('error'),
  };
  const release = on('release');
  const lost = on('lost');
  acquire.subscribe(handlers);
  subscribe(CHANNELS.release, release);
  subscribe(CHANNELS.lost, lost);
  try {
    await fn();
  } finally {
    acquire.unsubscribe(handlers);
    unsubscribe(CHANNELS.release, release);
    unsubscribe(CHANNELS.lost, lost);
  }
  return seen;
}

/** The context as `start` sees it. */
function startContext(name: string, lockfile: string, wait: number, synchronous: boolean, reentered = false): Record<string, unknown> {
  return { name, driver: 'posix', lockfile, mode: 'exclusive', wait, synchronous, reentered };
}

const file = (dir: string, name: string): string => `${dir}/exclusive-process.${name}.lock`;

/** A process holding `name` in `dir` (forever()) until killed. */
async function holder(name: string, dir: string): Promise<{ process: Started; pid: number }> {
  const process = start('hold.ts', [name, dir, 'posix']);
  await process.waitFor('held');
  return { process, pid: process.child.pid! };
}

async function stop(held: { process: Started }): Promise<void> {
  held.process.child.kill('SIGKILL');
  await held.process.finished;
}

test('a success: start and end (sync), start, end, asyncStart, asyncEnd (async), with the context and the handle', async (t) => {
  const dir = lockDir();
  let syncLock: ExclusiveLock | undefined;
  const sync = await recording('ok-sync', () => {
    syncLock = Exclusive.lock({ name: 'ok-sync', dir });
  });
  await syncLock!.release();
  t.deepEqual(
    sync.map((s) => s.event),
    ['start', 'end']
  );
  t.deepEqual(sync[0].context, startContext('ok-sync', file(dir, 'ok-sync'), 0, true));
  const { waitedMs, result, ...end } = sync[1].context;
  t.deepEqual(end, { ...startContext('ok-sync', file(dir, 'ok-sync'), 0, true), outcome: 'acquired' });
  t.is(result, syncLock);
  t.true(typeof waitedMs === 'number' && waitedMs >= 0);

  let asyncLock: ExclusiveLock | undefined;
  const async = await recording('ok-async', async () => {
    asyncLock = await Exclusive.acquire({ name: 'ok-async', dir, wait: true });
  });
  await asyncLock!.release();
  t.deepEqual(
    async.map((s) => s.event),
    ['start', 'end', 'asyncStart', 'asyncEnd']
  );
  const begun = startContext('ok-async', file(dir, 'ok-async'), Infinity, false);
  t.deepEqual(async[0].context, begun);
  t.deepEqual(async[1].context, begun, 'the synchronous part ends before the outcome is known');
  for (const seen of async.slice(2)) {
    const { waitedMs: waited, result: lock, ...rest } = seen.context;
    t.deepEqual(rest, { ...begun, outcome: 'acquired' });
    t.is(lock, asyncLock);
    t.is(typeof waited, 'number');
  }
});

test('a conflict with another process: the error event carries the CannotAcquireLock; outcome held-elsewhere', async (t) => {
  const dir = lockDir();
  const held = await holder('taken', dir);
  try {
    const seen = await recording('taken', async () => {
      await t.throwsAsync(Exclusive.acquire({ name: 'taken', dir }), { instanceOf: CannotAcquireLock });
      t.throws(() => Exclusive.lock({ name: 'taken', dir }), { instanceOf: CannotAcquireLock });
    });
    t.deepEqual(
      seen.map((s) => s.event),
      ['start', 'end', 'error', 'asyncStart', 'asyncEnd', 'start', 'error', 'end']
    );
    const failedAsync = seen.slice(2, 5).map((s) => s.context);
    for (const context of failedAsync) {
      const { waitedMs, error, ...rest } = context;
      t.deepEqual(rest, { ...startContext('taken', file(dir, 'taken'), 0, false), outcome: 'held-elsewhere' });
      t.true(error instanceof CannotAcquireLock);
      t.is((error as CannotAcquireLock).pid, held.pid);
      t.is(typeof waitedMs, 'number');
    }
    const { waitedMs, error, ...sync } = seen[7].context;
    t.deepEqual(sync, { ...startContext('taken', file(dir, 'taken'), 0, true), outcome: 'held-elsewhere' });
    t.is((error as CannotAcquireLock).reason, 'held-elsewhere');
    t.is(typeof waitedMs, 'number');
  } finally {
    await stop(held);
  }
});

test('conflicts inside this process: outcome held-in-process for another call chain, would-deadlock for a synchronous wait on a lock this thread holds', async (t) => {
  const dir = lockDir();
  const outer = Exclusive.lock({ name: 'inside', dir });
  try {
    const seen = await recording('inside', async () => {
      // Another call chain of this process (not the one holding it: no re-entry).
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          t.throws(() => Exclusive.lock({ name: 'inside', dir, wait: 5000 }), { instanceOf: CannotAcquireLock });
          resolve();
        })
      );
      await t.throwsAsync(
        new Promise<ExclusiveLock>((resolve, reject) =>
          setImmediate(() => {
            Exclusive.acquire({ name: 'inside', dir }).then(resolve, reject);
          })
        ),
        { instanceOf: CannotAcquireLock }
      );
    });
    const outcomes = seen
      .filter((s) => (s.event === 'end' && s.context.synchronous === true) || s.event === 'asyncEnd')
      .map((s) => [s.context.synchronous, s.context.outcome]);
    t.deepEqual(outcomes, [
      [true, 'would-deadlock'],
      [false, 'held-in-process'],
    ]);
  } finally {
    await outer.release();
  }
});

test('a wait that times out: outcome timed-out, waitedMs at least the wait', async (t) => {
  const dir = lockDir();
  const held = await holder('slow', dir);
  try {
    const seen = await recording('slow', () => t.throwsAsync(Exclusive.acquire({ name: 'slow', dir, wait: 300 })));
    t.deepEqual(
      seen.map((s) => s.event),
      ['start', 'end', 'error', 'asyncStart', 'asyncEnd']
    );
    const { waitedMs, error, ...rest } = seen[4].context;
    t.deepEqual(rest, { ...startContext('slow', file(dir, 'slow'), 300, false), outcome: 'timed-out' });
    t.is((error as CannotAcquireLock).reason, 'timed-out');
    t.true((waitedMs as number) >= 299, String(waitedMs));
  } finally {
    await stop(held);
  }
});

test('an abort: outcome aborted, the error is the signal reason', async (t) => {
  const dir = lockDir();
  const held = await holder('stopped', dir);
  try {
    const controller = new AbortController();
    const reason = new Error('enough');
    const seen = await recording('stopped', async () => {
      const waiting = Exclusive.acquire({ name: 'stopped', dir, wait: true, signal: controller.signal });
      setTimeout(() => controller.abort(reason), 100);
      t.is(await waiting.catch((error: unknown) => error), reason);
    });
    t.deepEqual(
      seen.map((s) => s.event),
      ['start', 'end', 'error', 'asyncStart', 'asyncEnd']
    );
    const { waitedMs, error, ...rest } = seen[3].context;
    t.deepEqual(rest, { ...startContext('stopped', file(dir, 'stopped'), Infinity, false), outcome: 'aborted' });
    t.is(error, reason);
    t.true((waitedMs as number) >= 99, String(waitedMs));
  } finally {
    await stop(held);
  }
});

test('releases: one message per handle, final only for the last; a re-entry is traced as reentered', async (t) => {
  const dir = lockDir();
  const lockfile = file(dir, 'again');
  const seen = await recording('again', () =>
    Exclusive.run({ name: 'again', dir }, () => Exclusive.run({ name: 'again', dir }, () => t.pass()))
  );
  t.deepEqual(
    seen.map((s) => `${s.event} ${(s.context.reentered as boolean | undefined) ?? ''}`),
    [
      'start false',
      'end false',
      'asyncStart false',
      'asyncEnd false',
      'start true',
      'end true',
      'asyncStart true',
      'asyncEnd true',
      'release ',
      'release ',
    ]
  );
  t.is(seen[7].context.outcome, 'acquired');
  t.deepEqual(seen[8].context, { name: 'again', driver: 'posix', lockfile, final: false } satisfies ReleaseMessage);
  t.deepEqual(seen[9].context, { name: 'again', driver: 'posix', lockfile, final: true } satisfies ReleaseMessage);
});

test('a loss (postgres session terminated): one lost message with the LockLostError', async (t) => {
  let server: PostgresServer | undefined;
  try {
    server = await startPostgres();
    const driver = postgres({ connectionString: server.connectionString });
    const other = postgres({ connectionString: server.connectionString });
    let lock: ExclusiveLock | undefined;
    const seen = await recording('gone', async () => {
      lock = await Exclusive.acquire({ name: 'gone', driver });
      const backendPid = (await Exclusive.holder('gone', { driver: other }))!.details!.backendPid;
      const client = new Client({ connectionString: server!.connectionString });
      await client.connect();
      await client.query('SELECT pg_terminate_backend($1)', [backendPid]);
      await client.end();
      await aborted(lock.signal);
      await lock.release();
    });
    t.deepEqual(
      seen.map((s) => s.event),
      ['start', 'end', 'asyncStart', 'asyncEnd', 'lost', 'release']
    );
    t.is(seen[3].context.driver, 'postgres');
    const { reason, ...lost } = seen[4].context as unknown as LostMessage;
    t.deepEqual(lost, { name: 'gone', driver: 'postgres', lockfile: lock!.lockfile });
    t.true(reason instanceof LockLostError);
    t.is(reason, lock!.signal.reason);
    t.deepEqual(seen[5].context, { name: 'gone', driver: 'postgres', lockfile: lock!.lockfile, final: true });
  } finally {
    await server?.stop();
  }
});

/** Runs `argv` (a fixture and its arguments) under NODE_DEBUG=exclusive-process; once its log contains `waiting`, kills `held`. Its log, without the prefix. */
async function debugLog(argv: readonly string[], waiting: string, held: { process: Started }): Promise<{ log: string; stdout: string }> {
  const waiter = spawn(process.execPath, ['--import', 'tsx', `${FIXTURES}/${argv[0]}`, ...argv.slice(1)], {
    cwd: ROOT,
    env: { ...process.env, NODE_DEBUG: 'exclusive-process' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  waiter.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const seen = new Promise<void>((resolve) =>
    waiter.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes(waiting)) resolve();
    })
  );
  const ended = new Promise<number | null>((resolve) => waiter.on('close', resolve));
  await Promise.race([seen, ended]);
  await stop(held); // the waiter is waiting: let it have the lock
  if ((await ended) !== 0) throw new Error(`the waiter failed: ${stderr}`);
  return { log: stderr.replaceAll(`EXCLUSIVE-PROCESS ${waiter.pid}: `, ''), stdout };
}

/** The log lines of a wait for `name` held by `held` in `dir`, as regular expressions: up to the wait, and from the hand-off. */
function waitLines(name: string, dir: string, pid: number, how: string): { before: string[]; after: string[] } {
  const quoted = `'${name}'`;
  const lockfile = file(dir, name);
  const holderLine = `pid ${pid} \\(\`[^\`]*hold\\.ts ${name} ${dir} posix\`, since \\S+Z\\)`;
  return {
    before: [
      `lock directory ${dir}, from the \`dir\` option`,
      `lock ${quoted} is ${lockfile} \\(posix driver\\)`,
      `acquiring ${quoted}`,
      `trying ${quoted} \\(attempt 1, first try\\)`,
      `${quoted} is held by ${holderLine}: waiting up to 20000 ms \\(${how}\\)`,
    ],
    after: [
      `acquired ${quoted} after waiting \\d+\\.\\d ms: handed over from ${holderLine}`,
      `acquired ${quoted} \\(${lockfile}\\)`,
      `released ${quoted} \\(${lockfile}\\)`,
      'exit: cleaning up the posix driver\\(s\\)',
    ],
  };
}

test('NODE_DEBUG=exclusive-process explains a wait: the directory and why, who holds it, waiting, woken, handed over', async (t) => {
  const dir = lockDir();
  const held = await holder('explained', dir);
  const { log, stdout } = await debugLog(['try-lock.ts', 'explained', dir, 'posix', '20000'], '(attempt 2,', held);
  t.is(JSON.parse(stdout).acquired, true, stdout);
  const { before, after } = waitLines('explained', dir, held.pid, 'woken by each change of the lock file, polling for a holder that dies');
  const wake = "woken on 'explained' \\((poll|the lock changed)\\)\ntrying 'explained' \\(attempt \\d+, (poll|the lock changed)\\)\n";
  const watching = "trying 'explained' \\(attempt 2, watching\\)";
  // Woken at least once, unless the waiter was descheduled between logging
  // attempt 2 and making it (a loaded machine) and found the lock already free.
  t.regex(log, new RegExp(`^${[...before, watching].join('\n')}\n(${wake})*${after.join('\n')}\n$`));
});

test('NODE_DEBUG=exclusive-process explains a synchronous wait: who holds it, blocking, handed over', async (t) => {
  const dir = lockDir();
  const held = await holder('explained-sync', dir);
  const { log, stdout } = await debugLog(['conflict.ts', 'explained-sync', dir, 'sync', '{"wait":20000}'], 'is held by', held);
  t.is(stdout, '{"acquired":true}\n');
  const { before, after } = waitLines('explained-sync', dir, held.pid, 'blocking this thread, polling every 2-10 ms');
  t.regex(log, new RegExp(`^${[...before, ...after].join('\n')}\n$`));
});
