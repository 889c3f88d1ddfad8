// Two copies of the built package in one process (npm link, two versions
// nested in node_modules) share the thread's locks: they exclude and
// re-enter each other as one copy does, and never deadlock the thread.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FIXTURES, lockDir, ROOT } from './helpers/processes.js';
import { lockFiles } from './helpers/suite.js';

/** Builds the package and installs it twice, as two versions, under one temp dir that resolves its dependencies from ours. */
async function buildTwoCopies(): Promise<[string, string, () => void]> {
  const base = mkdtempSync(join(tmpdir(), 'exclusive-copies-'));
  symlinkSync(join(ROOT, 'node_modules'), join(base, 'node_modules'), 'dir');
  const a = join(base, 'a');
  await promisify(execFile)(
    process.execPath,
    [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(a, 'dist')],
    { cwd: ROOT }
  );
  const b = join(base, 'b');
  cpSync(join(a, 'dist'), join(b, 'dist'), { recursive: true });
  for (const [dir, version] of [
    [a, '0.1.0'],
    [b, '0.2.0'],
  ] as const) {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'exclusive-process', version, main: './dist/index.js' }));
  }
  return [a, b, () => rmSync(base, { recursive: true, force: true })];
}

let built: ReturnType<typeof buildTwoCopies> | undefined;
/** The two copies, built once for all tests of this file. */
function twoCopies(): ReturnType<typeof buildTwoCopies> {
  return (built ??= buildTwoCopies());
}
test.after.always(async () => {
  if (built !== undefined) (await built)[2]();
});

test('two copies of the package in one process: sync and async waits and conflicts, re-entry, forever() and an exact counter across both, also with posix in one and portable in the other', async (t) => {
  const [a, b] = await twoCopies();
  const dir = lockDir();
  // In a child with a time limit: a copy blocking on the other's lock would otherwise hang the suite.
  let pid: number | undefined;
  const { stdout, stderr, error } = await new Promise<{ stdout: string; stderr: string; error: Error | null }>((resolve) => {
    pid = execFile(
      process.execPath,
      [join(FIXTURES, 'two-copies.cjs'), a, b, dir],
      { timeout: 60_000, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => resolve({ stdout, stderr, error })
    ).pid;
  });
  t.is(error, null, `the child failed or hung (killed after 60 s): ${stderr}; stdout: ${stdout}`);
  const byScenario = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const { scenario, ...outcome } = JSON.parse(line) as { scenario: string };
        return [scenario, outcome];
      })
  );
  const own = `ERR_LOCK_HELD ${pid}`; // refused, naming this very process
  t.deepEqual(byScenario.sync, { waitForever: own, waitMs: own, none: own, afterRelease: true });
  t.deepEqual(byScenario.async, { refused: own, gotWhileHeld: false, next: true, holder: pid, afterRelease: null });
  t.deepEqual(byScenario.reentry, { sync: 'held', viaFunction: 'ran' });
  t.deepEqual(byScenario.forever, { whileHeld: 'held', afterRelease: own });
  const counter = byScenario.counter as { counter: number; expected: number; maxRunning: number; syncRefused: boolean };
  t.is(counter.counter, counter.expected);
  t.is(counter.maxRunning, 1);
  t.true(counter.syncRefused);
  t.deepEqual(byScenario.mixed, { crossWait: own, counter: 40 }, 'posix through one copy, portable through the other: one lock');
});

test("each copy's ExclusiveProcessError recognises the other copy's errors (instanceof); the subclasses stay per copy", async (t) => {
  const [a, b] = await twoCopies();
  const dir = lockDir();
  const script = `
    const [A, B] = [require(process.argv[1]), require(process.argv[2])];
    const caught = (call) => { try { call(); } catch (error) { return error; } };
    const held = A.Exclusive.lock({ name: 'brand', dir: process.argv[3] });
    const conflict = caught(() => B.Exclusive.lock({ name: 'brand', dir: process.argv[3] })); // B's CannotAcquireLock
    held.release();
    const argument = caught(() => B.exclusive(() => 1, { wiat: 1 })); // B's InvalidArgumentError
    const node = caught(() => require('node:fs').readFileSync('a\\0b')); // Node's ERR_INVALID_ARG_VALUE
    const is = (error, Class) => error instanceof Class;
    console.log(JSON.stringify({
      codes: [conflict.code, argument.code, node.code],
      conflict: [is(conflict, A.ExclusiveProcessError), is(conflict, B.ExclusiveProcessError), is(conflict, A.CannotAcquireLock), is(conflict, B.CannotAcquireLock)],
      argument: [is(argument, A.ExclusiveProcessError), is(argument, B.ExclusiveProcessError), is(argument, TypeError)],
      node: [is(node, A.ExclusiveProcessError), is(node, B.ExclusiveProcessError)],
    }));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script, a, b, dir], { timeout: 30_000 });
  t.deepEqual(JSON.parse(stdout), {
    codes: ['ERR_LOCK_HELD', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
    conflict: [true, true, false, true],
    argument: [true, true, true],
    node: [false, false],
  });
});

test('two copies each holding a lock with forever(): SIGTERM still ends the process, and both lock files are removed', async (t) => {
  const [a, b] = await twoCopies();
  const dir = lockDir();
  const child = spawn(process.execPath, [join(FIXTURES, 'two-copies-forever.cjs'), a, b, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const ended = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  t.deepEqual(lockFiles(dir).sort(), ['exclusive-process.forever-a.lock', 'exclusive-process.forever-b.lock']);
  child.kill('SIGTERM');
  // Each copy used to see the other's handler as the application's and leave the signal alone.
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const end = await ended;
  clearTimeout(timer);
  t.is(end, 'SIGTERM', stderr);
  t.deepEqual(lockFiles(dir), []);
});
