// The in-process registry against real call chains and real processes: a
// forever() handle taken inside a held call, calls made while another call
// of this thread waits on the OS for a holder process, and one lock file
// reached through two directory paths (a real bind mount).
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CannotAcquireLock, Exclusive, exclusive } from '../src/index.js';
import { lockDir, ROOT, run, start } from './helpers/processes.js';

const tick = (ms = 1): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('a forever() handle released inside run(): an unrelated call chain still waits for the run to end', async (t) => {
  const dir = lockDir();
  const name = 'forever-inside-run';
  const events: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const body = async (who: string): Promise<void> => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    events.push(`${who} in`);
    await tick(100);
    events.push(`${who} out`);
    running--;
  };
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  const outer = Exclusive.run({ name, dir }, async () => {
    const forever = Exclusive.forever({ name, dir }); // re-enters the run's hold
    await forever.release();
    entered();
    await body('run');
  });
  await inside;
  // A call chain of its own (this test's), while the run body still holds the lock.
  t.like(await t.throwsAsync(Exclusive.acquire({ name, dir }), { instanceOf: CannotAcquireLock }), {
    reason: 'held-in-process',
    pid: process.pid,
  });
  t.throws(() => Exclusive.lock({ name, dir }), { instanceOf: CannotAcquireLock });
  const other = exclusive(async () => body('other'), { name, dir, wait: true })();
  await Promise.all([outer, other]);
  t.is(maxRunning, 1);
  t.deepEqual(events, ['run in', 'run out', 'other in', 'other out']);
});

test('a forever() handle taken inside run() and kept: every acquisition re-enters until it is released', async (t) => {
  const dir = lockDir();
  const name = 'forever-kept';
  let forever!: ReturnType<typeof Exclusive.forever>;
  await Exclusive.run({ name, dir }, () => {
    forever = Exclusive.forever({ name, dir });
  });
  const again = await Exclusive.acquire({ name, dir }); // another chain: re-enters the process-wide hold
  t.true(again.held);
  await again.release();
  t.is(Exclusive.holder(name, { dir })?.pid, process.pid);
  await forever.release();
  t.is(Exclusive.holder(name, { dir }), null);
  const later = Exclusive.lock({ name, dir });
  const refused = await Exclusive.acquire({ name, dir }).then(
    () => 'acquired',
    (error: unknown) => (error as Error).constructor.name
  );
  t.is(refused, 'CannotAcquireLock', 'no process-wide re-entry is left after the forever() handle is released');
  await later.release();
});

/** Starts a real holder process and runs behind-a-waiter.ts with `variant` against it. */
async function behindAWaiter(
  variant: string
): Promise<{ holder: number; lines: Array<Record<string, unknown>>; code: number | null; stderr: string }> {
  const dir = lockDir();
  const name = `behind-${variant}`;
  const holder = start('hold.ts', [name, dir]);
  await holder.waitFor('held');
  const holderPid = holder.child.pid!;
  try {
    const result = await run('behind-a-waiter.ts', [name, dir, String(holderPid), variant]);
    const lines = result.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    return { holder: holderPid, lines, code: result.code, stderr: result.stderr };
  } finally {
    holder.child.kill('SIGKILL');
    await holder.finished;
  }
}

for (const [variant, reason] of [
  ['try-async', 'held-elsewhere'],
  ['queued-async', 'timed-out'],
  ['sync-function', 'held-elsewhere'],
]) {
  test.serial(`behind an async call waiting for a holder process, ${variant} fails naming the holder, not this process`, async (t) => {
    const { holder, lines, code, stderr } = await behindAWaiter(variant);
    t.is(code, 0, stderr);
    t.like(lines[0], { code: 'ERR_LOCK_HELD', pid: holder, reason });
  });
}

test.serial(
  'behind an async call waiting for a holder process, a synchronous lock({ wait: 300 }) waits its time, then names the holder',
  async (t) => {
    const { holder, lines, code, stderr } = await behindAWaiter('sync-wait-ms');
    t.is(code, 0, stderr);
    t.like(lines[0], { code: 'ERR_LOCK_HELD', pid: holder, reason: 'timed-out' });
    t.true((lines[0].ms as number) >= 290, `waited ${String(lines[0].ms)} ms`);
  }
);

test.serial("behind an async call waiting for a holder process, die prints the holder's pid", async (t) => {
  const { holder, code, stderr } = await behindAWaiter('die');
  t.is(code, 1);
  t.is(stderr, `Another 'behind-die' process is already running (pid ${holder}).\n`);
});

test.serial(
  'behind an async call waiting for a holder process, a synchronous wait: true takes the lock when the holder ends; the async caller gets it only after its release',
  async (t) => {
    const { lines, code, stderr } = await behindAWaiter('sync-wait-forever');
    t.is(code, 0, stderr);
    t.is(lines.length, 3, JSON.stringify(lines));
    const pid = lines[0].holder as number;
    t.like(lines[0], { held: true });
    t.not(pid, undefined);
    t.deepEqual(lines[1], { waiterHeldWhileSyncHeld: false });
    t.deepEqual(lines[2], { waiterHeldAfter: true, holder: pid });
  }
);

/** Bind-mounts a fresh directory onto another; undefined where mounting is impossible (not root, no CAP_SYS_ADMIN). */
function bindMount(): { source: string; target: string; remove: () => void } | undefined {
  const source = mkdtempSync(join(tmpdir(), 'exclusive-bind-source-'));
  const target = mkdtempSync(join(tmpdir(), 'exclusive-bind-target-'));
  const mounted = spawnSync('mount', ['--bind', source, target], { stdio: 'ignore' }).status === 0;
  const removeDirs = (): void => {
    rmSync(target, { recursive: true, force: true });
    rmSync(source, { recursive: true, force: true });
  };
  if (!mounted) {
    removeDirs();
    return undefined;
  }
  return {
    source,
    target,
    remove: () => {
      execFileSync('umount', [target]);
      removeDirs();
    },
  };
}

for (const driver of ['posix', 'portable']) {
  test.serial(
    `${driver}: one lock file through two paths (a bind mount): a synchronous wait: true in the holding thread fails at once, in a child that cannot hang the suite`,
    async (t) => {
      const mount = bindMount();
      if (mount === undefined) {
        t.log('SKIPPED: mount --bind is impossible here (needs root with CAP_SYS_ADMIN)');
        t.pass();
        return;
      }
      try {
        const script = `
        const { Exclusive } = require(${JSON.stringify(join(ROOT, 'src', 'index.ts'))});
        const [source, target, driver] = process.argv.slice(1);
        const held = Exclusive.lock({ name: 'two-paths', dir: source, driver });
        const outcome = (options) => {
          try { Exclusive.lock({ name: 'two-paths', dir: target, driver, ...options }); return 'acquired'; }
          catch (error) { return error.code + ' ' + error.pid + ' ' + error.reason; }
        };
        console.log(JSON.stringify({ forever: outcome({ wait: true }), ms: outcome({ wait: 100 }), none: outcome({}) }));
        try { Exclusive.lock({ name: 'two-paths', dir: target, driver, wait: true }); } catch (error) { console.log(JSON.stringify(error.message)); }
        held.release();
        const other = Exclusive.lock({ name: 'two-paths', dir: target, driver, wait: true });
        console.log(JSON.stringify({ afterRelease: other.held }));`;
        const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script, mount.source, mount.target, driver], {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: 30_000,
          killSignal: 'SIGKILL',
        });
        t.is(child.signal, null, `the child hung and was killed after 30 s; stderr: ${child.stderr}`);
        t.is(child.status, 0, child.stderr);
        const [first, message, second] = child.stdout
          .trim()
          .split('\n')
          .map((line): unknown => JSON.parse(line));
        const own = `ERR_LOCK_HELD ${child.pid}`;
        t.deepEqual(first, { forever: `${own} would-deadlock`, ms: `${own} would-deadlock`, none: `${own} held-in-process` });
        t.regex(
          message as string,
          new RegExp(
            `^Waiting for the lock 'two-paths' would deadlock: this thread already holds it under another path to the same file, such as a bind mount \\(pid ${child.pid}, \\S`
          )
        );
        t.deepEqual(second, { afterRelease: true });
      } finally {
        mount.remove();
      }
    }
  );
}
