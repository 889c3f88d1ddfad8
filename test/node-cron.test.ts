// exclusive-process/node-cron: coordinator() as node-cron 4's RunCoordinator.
// Three real processes of examples/node-cron.ts run the same every-second
// distributed task for 5 s:
// every fire runs exactly once in total, with the posix driver and with a
// real PostgreSQL server. A fire's lock is kept for its lease, so a process
// asking after the run finished is told false; then it is released, and no
// lock file is left once the processes end.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Exclusive } from '../src/index.js';
import { coordinator } from '../src/node-cron.js';
import { startPostgres, type PostgresServer } from './helpers/postgres-server.js';
import { lockDir, ROOT, start, type Started } from './helpers/processes.js';

const test = anyTest as TestFn<unknown>;
let server: PostgresServer | undefined;

test.after.always(async () => {
  await server?.stop();
});

/** Runs three processes of examples/node-cron.ts at once for 5 s; returns how many runs each fire had, by fire time, and the processes' outputs. */
async function fleet(env: NodeJS.ProcessEnv): Promise<{ runs: Map<string, number>; outputs: string[] }> {
  const example = join(ROOT, 'examples', 'node-cron.ts');
  const ended = await Promise.all([0, 1, 2].map(() => start(example, [], { ...env, EXAMPLE_RUN_MS: '5000' }).finished));
  const runs = new Map<string, number>();
  for (const { stdout } of ended)
    for (const [, fire] of stdout.matchAll(/^tick (\S+) ran in \d+$/gm)) runs.set(fire, (runs.get(fire) ?? 0) + 1);
  return { runs, outputs: ended.map((end) => `code ${end.code}\n${end.stdout}${end.stderr}`) };
}

/** Every second from the first fire run to the last, as node-cron names fires. */
function secondsBetween(fires: Iterable<string>): string[] {
  const times = [...fires].map(Date.parse).sort((a, b) => a - b);
  const all: string[] = [];
  for (let time = times[0]; time <= times[times.length - 1]; time += 1000) all.push(new Date(time).toISOString());
  return all;
}

function assertEachFireOnce(t: ExecutionContext, runs: Map<string, number>, outputs: string[]): void {
  const detail = outputs.join('\n---\n');
  for (const output of outputs) t.regex(output, /^code 0\n/, detail);
  t.true(runs.size >= 4, detail);
  t.deepEqual(
    [...runs.entries()].sort(),
    secondsBetween(runs.keys()).map((fire) => [fire, 1]),
    detail
  );
  const skipped = outputs.reduce((sum, output) => sum + Number(/^skipped (\d+)$/m.exec(output)?.[1] ?? NaN), 0);
  t.true(skipped >= runs.size, `the other processes skipped (${skipped} skips for ${runs.size} fires)`);
}

test('posix: three processes, one every-second distributed task for 5 s: every fire runs exactly once in total; no lock file left', async (t) => {
  const dir = lockDir();
  const { runs, outputs } = await fleet({ EXCLUSIVE_PROCESS_DIR: dir });
  assertEachFireOnce(t, runs, outputs);
  t.deepEqual(readdirSync(dir), []);
});

test('postgres: three processes, one every-second distributed task for 5 s: every fire runs exactly once in total', async (t) => {
  server = await startPostgres();
  const { runs, outputs } = await fleet({ EXCLUSIVE_PROCESS_DIR: lockDir(), DATABASE_URL: server.connectionString });
  assertEachFireOnce(t, runs, outputs);
});

test("a fire's lock outlives its run for the lease: a late process is told false, and after the lease the fire is free", async (t) => {
  const dir = lockDir();
  const key = 'late:2026-01-01T00:00:00.000Z';
  const name = `node-cron:${key}`;
  const late = start('coordinate.ts', [dir, key, '2000'], {}, 'pipe');
  await late.waitFor('ready');
  const coordinate = coordinator({ dir });
  const leaseMs = 3000;
  const leased = performance.now();
  t.true(await coordinate.shouldRun(key, leaseMs));
  t.false(await coordinate.shouldRun(key, leaseMs), 'asked again in this process');
  await coordinate.onComplete!(key);
  t.is(Exclusive.holder(name, { dir })?.pid, process.pid, 'held after the run completed');
  t.is(await answer(late, 1), 'shouldRun false', 'asked by another process after the run completed');
  t.true(performance.now() - leased < leaseMs, 'the late process asked within the lease (a slow machine makes this test inconclusive)');
  await sleep(leaseMs + 300 - (performance.now() - leased));
  t.is(Exclusive.holder(name, { dir }), null, 'released once the lease ran out');
  t.is(await answer(late, 2), 'shouldRun true');
  late.child.kill();
});

/** Asks the coordinate.ts process once more; returns its `nth` answer. */
async function answer(asker: Started, nth: number): Promise<string> {
  asker.child.stdin!.write('ask\n');
  for (;;) {
    const answers = (await asker.waitFor('shouldRun')).split('\n').filter((line) => line.startsWith('shouldRun'));
    if (answers.length >= nth) return answers[nth - 1];
    await sleep(10);
  }
}

test('a run longer than its lease keeps the lock until it completes', async (t) => {
  const dir = lockDir();
  const coordinate = coordinator({ dir, prefix: 'long/' });
  t.true(await coordinate.shouldRun('job:1', 10));
  await sleep(100);
  t.is(Exclusive.holder('long/job:1', { dir })?.pid, process.pid);
  await coordinate.onComplete!('job:1');
  t.is(Exclusive.holder('long/job:1', { dir }), null);
});

test('bad options are refused at once, a bad ttlMs at the call', async (t) => {
  t.throws(() => coordinator({ directory: '/tmp' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: "options.directory is not an option of coordinator(): did you mean 'dir'? (known: dir, driver, prefix)",
  });
  t.throws(() => coordinator({ prefix: 1 } as never), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: 'options.prefix must be a string, got number 1',
  });
  t.throws(() => coordinator({ driver: 'nope' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
  await t.throwsAsync(async () => coordinator({ dir: lockDir() }).shouldRun('k', -1), {
    code: 'ERR_INVALID_ARG_VALUE',
    message:
      "shouldRun(key, ttlMs): ttlMs must be an integer from 0 to 2147483647 milliseconds (node-cron's distributedLease), got number -1",
  });
});

test("the README's node-cron code is the tested example's", (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- excerpt: examples\/node-cron.ts -->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  const example = readFileSync(join(ROOT, 'examples', 'node-cron.ts'), 'utf8');
  t.truthy(block);
  t.true(example.includes(block!));
});
