// Bun and Deno. test/run.sh runs this file and the CLI's once more per
// runtime (EXCLUSIVE_TEST_RUNTIME=bun, deno): the fixtures and the library
// they load then run in that runtime, and so do the posix and portable
// drivers' multi-process suites (test/helpers/suite.ts), registered here for
// those runs. The cross-runtime tests (Node, Bun and Deno processes on one
// lock) run once, in the default (Node) run.
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockDir, run, startCommand, startIn, type Finished } from './helpers/processes.js';
import { runtimeArgv, testRuntime, type Runtime } from './helpers/runtimes.js';
import { FIXTURES, ROOT } from './helpers/processes.js';
import { driverSuite } from './helpers/suite.js';

const RUNTIME = testRuntime();
const DRIVERS = ['posix', 'portable'] as const;

if (RUNTIME !== 'node') for (const driver of DRIVERS) driverSuite(test, driver); // Node runs them from test/drivers/

test(`the fixtures run in ${RUNTIME}, and one that finds itself in another runtime fails`, async (t) => {
  const result = await run('runtime-report.ts');
  t.deepEqual(JSON.parse(result.stdout), { runtime: RUNTIME }, result.stderr);
  if (RUNTIME === 'node') return; // Node runs fixtures directly, through tsx
  const [command, ...args] = runtimeArgv(RUNTIME, join(FIXTURES, 'runtime-report.ts'), []);
  const wrong = await startCommand(command, args, { cwd: ROOT, env: { EXCLUSIVE_TEST_RUNTIME: 'node' } }).finished;
  t.is(wrong.code, 97);
  t.is(wrong.stdout, '');
});

for (const driver of DRIVERS) {
  test(`${RUNTIME}, ${driver}: using and await using hold the lock for their block; a lock without a name takes the file's`, async (t) => {
    const result = await run('using-forms.ts', [lockDir(), driver]);
    t.is(result.code, 0, result.stderr);
    t.deepEqual(JSON.parse(result.stdout), {
      syncInside: true,
      syncAfter: false,
      asyncInside: true,
      asyncAfter: false,
      defaultName: 'exclusive-process/test/fixtures/using-forms',
    });
  });

  test(`${RUNTIME}, ${driver}: 4 worker threads x 100 increments under one lock end at exactly 400`, async (t) => {
    const dir = lockDir();
    const counter = join(dir, 'counter');
    writeFileSync(counter, '0');
    const result = await run('workers.ts', [dir, counter, '4', '100', '', driver]);
    t.is(result.code, 0, result.stderr);
    t.is(readFileSync(counter, 'utf8'), '400');
  });
}

test(`${RUNTIME}: default names come from the calling file (exclusive(fn), Exclusive.run)`, async (t) => {
  const result = await run('visible-names.ts', [], { EXCLUSIVE_PROCESS_DIR: lockDir() });
  t.is(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout) as { lockName: string; conflict: string; ran: { name: string; holder: boolean } };
  t.is(seen.lockName, 'exclusive-process/test/fixtures/visible-names');
  t.is(seen.conflict, seen.lockName);
  t.deepEqual(seen.ran, { name: seen.lockName, holder: true });
});

// ------------------------------------------------------------ across runtimes

if (RUNTIME === 'node') {
  const MIX: readonly Runtime[] = ['node', 'node', 'node', 'bun', 'bun', 'bun', 'deno', 'deno'];

  for (const driver of DRIVERS) {
    test.serial(`${driver}: 3 Node, 3 Bun and 2 Deno processes x 100 read-modify-write increments end at exactly 800`, async (t) => {
      const dir = lockDir();
      const counter = join(dir, 'counter');
      writeFileSync(counter, '0');
      const modes = ['async', 'sync'];
      const results = await Promise.all(
        MIX.map((runtime, i) => startIn(runtime, 'counter.ts', [dir, driver, counter, '100', modes[i % 2]]).finished)
      );
      for (const result of results) t.is(result.code, 0, result.stderr);
      t.is(readFileSync(counter, 'utf8'), '800');
    });

    test.serial(
      `${driver}: a holder in each runtime refuses and is named to the others, and its release reaches their waiters`,
      async (t) => {
        for (const holding of ['node', 'bun', 'deno'] as const) {
          const others = (['node', 'bun', 'deno'] as const).filter((runtime) => runtime !== holding);
          await holderAgainst(t, driver, holding, others);
        }
      }
    );
  }
}

async function holderAgainst(
  t: import('ava').ExecutionContext,
  driver: string,
  holding: Runtime,
  others: readonly Runtime[]
): Promise<void> {
  const dir = lockDir();
  const name = `across-${holding}`;
  const holder = startIn(holding, 'hold.ts', [name, dir, driver]);
  t.teardown(() => holder.child.kill('SIGKILL'));
  await holder.waitFor('held');
  const pid = holder.child.pid;
  for (const runtime of others) {
    const refused = json(await startIn(runtime, 'try-lock.ts', [name, dir, driver]).finished);
    t.like(refused, { acquired: false, holder: pid }, `${runtime} against a ${holding} holder`);
    t.deepEqual(json(await startIn(runtime, 'holder.ts', [name, dir, driver]).finished), { held: true, pid }, `holder() in ${runtime}`);
  }
  const waiters = others.map((runtime) => startIn(runtime, 'try-lock.ts', [name, dir, driver, 'true']));
  await new Promise((resolve) => setTimeout(resolve, 500)); // they wait
  holder.child.kill('SIGTERM');
  t.is((await holder.finished).signal, 'SIGTERM');
  for (const [i, waiter] of waiters.entries()) t.like(json(await waiter.finished), { acquired: true }, `the ${others[i]} waiter`);
}

function json(result: Finished): unknown {
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`not JSON: ${result.stdout}; stderr: ${result.stderr}`);
  }
}
