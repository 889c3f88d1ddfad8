// `skip: true`: a call that finds the lock held (by another process, or by
// another call of this one) does not run and resolves to undefined (handles:
// null), quietly, in every form; logged by NODE_DEBUG and traced as
// 'skipped'; refused eagerly beside `die` and `wait`.
import test from 'ava';
import { tracingChannel } from 'node:diagnostics_channel';
import { CHANNELS, Exclusive, exclusive, type AcquireContext } from '../src/index.js';
import { lockDir, run, start } from './helpers/processes.js';

const BODIES = 'async method, sync method, async function, sync function, run';

for (const driver of ['posix', 'portable']) {
  test(`${driver}: every form skips quietly while another process holds the lock, and runs once it is free`, async (t) => {
    const dir = lockDir();
    const holder = start('hold.ts', ['skipped', dir, driver]);
    await holder.waitFor('held');
    const skipped = await run('skip.ts', ['skipped', dir, driver], { NODE_DEBUG: 'exclusive-process' });
    holder.child.kill('SIGTERM');
    await holder.finished;
    t.is(skipped.code, 0, skipped.stderr);
    t.is(
      skipped.stdout,
      [
        'async method: undefined',
        'sync method: undefined',
        'async function: undefined',
        'sync function: undefined',
        'run: undefined',
        'acquire: null',
        'lock: null',
        'forever: null',
        'ran: nothing',
        'done',
        '',
      ].join('\n')
    );
    const logged = skipped.stderr.split('\n').filter((line) => line.includes("skipped 'skipped'"));
    t.is(logged.length, 8, skipped.stderr);
    t.true(
      logged.every((line) => line.endsWith(`(options.skip): held-elsewhere, by pid ${holder.child.pid}`)),
      logged.join('\n')
    );
    t.false(/CannotAcquireLock|Another '/.test(skipped.stderr), skipped.stderr);

    const free = await run('skip.ts', ['skipped', dir, driver]);
    t.is(free.code, 0, free.stderr);
    t.regex(free.stdout, new RegExp(`^ran: ${BODIES}$`, 'm'));
    t.regex(free.stdout, /^acquire: a handle\nlock: a handle\nforever: a handle$/m);
  });
}

test('a second concurrent call of this process is skipped too, and the first one runs', async (t) => {
  const dir = lockDir();
  let runs = 0;
  const job = exclusive(
    async () => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      return 'ran';
    },
    { name: 'skip-in-process', dir, skip: true }
  );
  t.deepEqual(await Promise.all([job(), job()]), ['ran', undefined]);
  t.is(runs, 1);
  t.is(await job(), 'ran'); // free again
});

test.serial("the acquire channel's outcome is 'skipped' (no error event) and its result null", async (t) => {
  const dir = lockDir();
  const holder = start('hold.ts', ['traced-skip', dir]);
  await holder.waitFor('held');
  const seen: Array<[string, AcquireContext]> = [];
  const on = (event: string) => (context: AcquireContext) => context.name === 'traced-skip' && seen.push([event, { ...context }]);
  const handlers = { start: on('start'), end: on('end'), asyncStart: on('asyncStart'), asyncEnd: on('asyncEnd'), error: on('error') };
  const channel = tracingChannel<unknown, AcquireContext>(CHANNELS.acquire);
  channel.subscribe(handlers);
  try {
    t.is(await Exclusive.acquire({ name: 'traced-skip', dir, skip: true }), null);
    t.is(Exclusive.lock({ name: 'traced-skip', dir, skip: true }), null);
  } finally {
    channel.unsubscribe(handlers);
    holder.child.kill('SIGTERM');
    await holder.finished;
  }
  t.deepEqual(
    seen.map(([event, context]) => [event, context.synchronous, context.outcome, context.result]),
    [
      ['start', false, undefined, undefined],
      ['end', false, undefined, undefined],
      ['asyncStart', false, 'skipped', null],
      ['asyncEnd', false, 'skipped', null],
      ['start', true, undefined, undefined],
      ['end', true, 'skipped', null],
    ]
  );
});

test('skip is refused eagerly beside die, wait, onSecondInstance and data, and must be a boolean', (t) => {
  const job = async (): Promise<void> => {};
  const withDie = 'options.skip and options.die cannot be combined: on a conflict skip gives up quietly, die ends the process; choose one';
  const withWait =
    "options.skip and options.wait cannot be combined: skip gives up at once when the lock is held; to wait and then give up, use wait and catch CannotAcquireLock (reason 'timed-out')";
  t.throws(() => exclusive(job, { name: 'x', skip: true, die: true }), { code: 'ERR_INVALID_ARG_VALUE', message: withDie });
  t.throws(() => Exclusive({ skip: true, wait: 1000 }), { code: 'ERR_INVALID_ARG_VALUE', message: withWait });
  t.throws(() => Exclusive.lock({ name: 'x', skip: true, wait: true }), { code: 'ERR_INVALID_ARG_VALUE', message: withWait });
  t.throws(() => Exclusive.forever({ name: 'x', skip: true, die: true }), { code: 'ERR_INVALID_ARG_VALUE', message: withDie });
  const withInstance =
    'options.skip cannot be combined with onSecondInstance or data: a second instance hands its message over instead of skipping';
  t.throws(() => Exclusive.forever({ name: 'x', skip: true, data: { file: 'a' } }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: withInstance,
  });
  t.throws(() => Exclusive.forever({ name: 'x', skip: true, onSecondInstance: () => ({}) }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: withInstance,
  });
  t.throws(() => exclusive(job, { name: 'x', skip: 'yes' as unknown as boolean }), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: 'options.skip must be a boolean, got string "yes"',
  });
  t.notThrows(() => exclusive(job, { name: 'x', skip: true, wait: false, die: false }));
});
