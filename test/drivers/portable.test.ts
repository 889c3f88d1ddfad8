import test from 'ava';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { encodeRecord } from '../../src/shared/holder-record.js';
import { CannotAcquireLock, Exclusive, LockFileError } from '../../src/index.js';
import { lockFilePath } from '../../src/drivers/file/path.js';
import { claimPathFor } from '../../src/drivers/file/claim.js';
import { gateClaimPath, slotClaimPath, slotsMarkerPath } from '../../src/drivers/file/slot-claims.js';
import { processStartTime } from '../../src/shared/process-identity.js';
import { createPortableDriver } from '../../src/drivers/portable/index.js';
import { driverSuite } from '../helpers/suite.js';
import { modesSuite } from '../helpers/modes-suite.js';
import { FIXTURES, ROOT, lockDir, run, start, startCommand } from '../helpers/processes.js';
import { buildForUsers } from '../helpers/run-as.js';

driverSuite(test, 'portable');
modesSuite(test, 'portable');

const portable = { driver: 'portable' } as const;
/** The portable driver's claim file for `name`. */
const claimPath = (name: string, dir: string): string => claimPathFor(lockFilePath(name, dir));
const BOOT = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();

/** Writes a lock file as a holder would have: our record line, and optionally our second (token) line. */
function plant(path: string, record: { pid: number; start?: string; host?: string }, meta?: Record<string, string>): Buffer {
  let bytes = encodeRecord({ name: 'planted', host: hostname(), ...record });
  if (meta !== undefined) bytes = Buffer.concat([bytes, Buffer.from(`${JSON.stringify(meta)}\n`)]);
  writeFileSync(path, bytes);
  return bytes;
}

/** An unrelated live process (not a Node process, not ours to lock with). */
async function sleeper(t: { teardown(fn: () => void): void }): Promise<ChildProcess & { pid: number }> {
  const child = spawn('sleep', ['120'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise((resolve) => child.once('spawn', resolve));
  return child as ChildProcess & { pid: number };
}

/** A pid that no longer runs: a process that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn('true', { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

/** The pid that hold.ts, started by `child` (directly or through a shell), prints once it holds its lock. */
function heldPid(child: ChildProcess): Promise<number> {
  return new Promise((resolve) =>
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => chunk.startsWith('held') && resolve(Number(chunk.split(' ')[1])))
  );
}

function token(): string {
  return [...Array(24)].map(() => '0123456789abcdef'[Math.floor(Math.random() * 16)]).join('');
}

function tryLock(name: string, dir: string): { acquired: true } | { acquired: false; pid: number | null } {
  try {
    Exclusive.lock({ name, dir, ...portable })[Symbol.dispose](); // released now; a failure to release is thrown
    return { acquired: true };
  } catch (error) {
    if (error instanceof CannotAcquireLock) return { acquired: false, pid: error.pid };
    throw error;
  }
}

test('a lock file naming a live process with another start time (a reused pid) is reclaimed', async (t) => {
  const dir = lockDir();
  const sleep = await sleeper(t);
  const path = claimPath('reuse', dir);
  const realStart = processStartTime(sleep.pid)!;
  t.regex(realStart, /^\d+$/);
  plant(path, { pid: sleep.pid, start: String(Number(realStart) + 1) });
  t.is(Exclusive.holder('reuse', { dir, ...portable }), null, 'a reused pid is reported free');
  const lock = Exclusive.lock({ name: 'reuse', dir, ...portable });
  t.like(JSON.parse(readFileSync(path, 'utf8').split('\n')[0]), { name: 'reuse', pid: process.pid });
  await lock.release();
  t.false(existsSync(path));
  t.is(sleep.exitCode, null, 'the unrelated process was not touched');
});

test('a lock file naming a live process with its own start time is held, and left as it is', async (t) => {
  const dir = lockDir();
  const sleep = await sleeper(t);
  const path = claimPath('alive', dir);
  const start = processStartTime(sleep.pid)!;
  for (const meta of [undefined, { token: token(), boot: BOOT }]) {
    const bytes = plant(path, { pid: sleep.pid, start }, meta);
    t.deepEqual(tryLock('alive', dir), { acquired: false, pid: sleep.pid });
    t.like(Exclusive.holder('alive', { dir, ...portable }), { pid: sleep.pid, start, command: undefined });
    t.deepEqual(readFileSync(path), bytes);
  }
  // Without a start time (a record from an OS that gives none) a live pid counts.
  plant(path, { pid: sleep.pid });
  t.deepEqual(tryLock('alive', dir), { acquired: false, pid: sleep.pid });
});

test('a record from a previous boot is reclaimed even when its pid and start time match a live process', async (t) => {
  const dir = lockDir();
  const sleep = await sleeper(t);
  const path = claimPath('reboot', dir);
  plant(path, { pid: sleep.pid, start: processStartTime(sleep.pid)! }, { token: token(), boot: '00000000-0000-0000-0000-000000000000' });
  t.deepEqual(tryLock('reboot', dir), { acquired: true });
  t.false(existsSync(path));
});

test('a record from another host or another pid namespace cannot be checked and counts as held', async (t) => {
  const dir = lockDir();
  const dead = await deadPid();
  const path = claimPath('remote', dir);
  plant(path, { pid: dead, start: '1', host: 'another-host.example' });
  t.deepEqual(tryLock('remote', dir), { acquired: false, pid: dead });
  t.like(Exclusive.holder('remote', { dir, ...portable }), { pid: dead, host: 'another-host.example' });
  plant(path, { pid: dead, start: '1' }, { token: token(), boot: BOOT, pidns: 'pid:[1]' });
  t.deepEqual(tryLock('remote', dir), { acquired: false, pid: dead });
  // The same record from our own namespace: the holder is dead, reclaimed.
  plant(path, { pid: dead, start: '1' }, { token: token(), boot: BOOT, pidns: readlinkPidns() });
  t.deepEqual(tryLock('remote', dir), { acquired: true });
});

function readlinkPidns(): string {
  return execFileSync('readlink', ['/proc/self/ns/pid'], { encoding: 'utf8' }).trim();
}

test('garbage, 0, huge numbers, bare pids and truncated records are reclaimed (they never crash later runs)', (t) => {
  const dir = lockDir();
  const path = claimPath('garbage', dir);
  const valid = encodeRecord({ name: 'garbage', pid: process.pid, host: hostname() });
  const contents: Array<string | Buffer> = [
    '',
    '0',
    '0\n',
    '99999999999999999999999999\n',
    String(process.pid),
    `${process.pid}\n`,
    'garbage',
    '\n\n\n',
    '{"v":1,"name":"garbage","pid":0}\n',
    '{"v":1,"name":"garbage","pid":1e300}\n',
    '{"v":1,"name":"garbage","pid":-5}\n',
    '[1]\n',
    'null\n',
    valid.subarray(0, 20),
    Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x0a]),
  ];
  for (const content of contents) {
    writeFileSync(path, content);
    const label = JSON.stringify(content.toString());
    t.is(Exclusive.holder('garbage', { dir, ...portable }), null, label);
    t.deepEqual(tryLock('garbage', dir), { acquired: true }, label);
    t.false(existsSync(path), label);
  }
  t.deepEqual(readdirSync(dir), [], 'no temp or guard file left behind');
});

test('20 processes racing to reclaim one stale lock file: exactly one wins, the others name it', async (t) => {
  for (const ours of [false, true]) {
    const dir = lockDir();
    const dead = await deadPid();
    const path = claimPath('starter', dir);
    const staleToken = token();
    // Ours: as left by a holder killed between link() and removing its temp file.
    plant(path, { pid: dead, start: '1' }, ours ? { token: staleToken, boot: BOOT } : undefined);
    if (ours) writeFileSync(`${path}.${staleToken}.tmp`, readFileSync(path));
    const starters = Array.from({ length: 20 }, () => start('starter.ts', [dir, 'portable']));
    t.teardown(() => starters.forEach((s) => s.child.kill('SIGKILL')));
    await Promise.all(starters.map((s) => s.waitFor('ready', 60_000)));
    for (const s of starters) s.child.kill('SIGUSR1');
    const won: number[] = [];
    const messages: string[] = [];
    await Promise.all(
      starters.map(async (s) => {
        const outcome = await s.waitFor('running', 60_000).then(
          () => 'won',
          () => 'lost'
        );
        if (outcome === 'won') won.push(s.child.pid!);
        else {
          const end = await s.finished;
          t.is(end.code, 1, end.stderr);
          messages.push(end.stderr);
        }
      })
    );
    t.is(won.length, 1, `${ours ? 'our' : 'a foreign'} stale file: exactly one reclaimer acquired`);
    t.is(messages.length, 19);
    // A loser that saw the winner names it; one that gave up while the winner
    // was still reclaiming (descheduled for over 200 ms) cannot know it yet.
    const named = messages.filter((m) => m === `Another 'starter' process is already running (pid ${won[0]}).\n`).length;
    const unknown = messages.filter((m) => m === "Another 'starter' process is already running (pid unknown).\n").length;
    t.is(named + unknown, 19, messages.join(''));
    t.like(JSON.parse(readFileSync(path, 'utf8').split('\n')[0]), { pid: won[0] });
    t.deepEqual(readdirSync(dir), [`exclusive-process.starter.pid`], 'no temp or guard file left, the stale temp file removed');
    t.log(`${ours ? 'our' : 'foreign'} stale file: ${named} losers named the winner, ${unknown} said unknown`);
  }
});

test('6 processes x 100 turns, every turn ending with a stale lock file: the counter is exact', async (t) => {
  const dir = lockDir();
  const counter = join(dir, 'counter');
  writeFileSync(counter, '0');
  const dead = await deadPid();
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) => run('portable-stale-counter.ts', [dir, counter, '100', String(dead), i < 2 ? 'sync' : 'async']))
  );
  for (const result of results) t.is(result.code, 0, result.stderr);
  t.is(readFileSync(counter, 'utf8'), '600');
  const left = readdirSync(dir).filter((file) => file !== 'counter');
  t.deepEqual(left, ['exclusive-process.stale-counter.pid'], 'only the last stale lock file: no temp or guard file left');
});

test('holder() and the die message report the holding process', async (t) => {
  const dir = lockDir();
  t.is(Exclusive.holder('reported', { dir, ...portable }), null);
  const holder = start('hold.ts', ['reported', dir, 'portable']);
  t.teardown(() => holder.child.kill('SIGKILL'));
  await holder.waitFor('held');
  const pid = holder.child.pid!;
  const record = Exclusive.holder('reported', { dir, ...portable });
  t.like(record, { name: 'reported', pid, host: hostname(), start: processStartTime(pid), driver: 'portable' });
  t.true(record!.command!.includes('hold.ts'), record!.command);
  t.true(record!.since instanceof Date);
  const second = await run('hold.ts', ['reported', dir, 'portable']);
  t.is(second.code, 1);
  t.is(second.stderr, `Another 'reported' process is already running (pid ${pid}).\n`);
  holder.child.kill('SIGKILL');
  await holder.finished;
  t.true(existsSync(claimPath('reported', dir)), 'kill -9 leaves the file');
  t.is(Exclusive.holder('reported', { dir, ...portable }), null, 'but a dead holder holds nothing');
  t.deepEqual(Exclusive.holder('reported', { dir, ...portable }), null);
  t.deepEqual(createPortableDriver().list!(dir), ['reported']);
});

test('a symlink, directory or FIFO at the lock path is refused with ERR_LOCK_FILE_UNSAFE and left untouched', (t) => {
  const dir = lockDir();
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious');
  const cases: Array<[string, (path: string) => void]> = [
    ['symlink', (path) => symlinkSync(victim, path)],
    ['dangling symlink', (path) => symlinkSync(join(dir, 'nowhere'), path)],
    ['directory', (path) => mkdirSync(path)],
    ['fifo', (path) => execFileSync('mkfifo', [path])],
  ];
  for (const [what, make] of cases) {
    const name = `unsafe-${what}`;
    const path = claimPath(name, dir);
    make(path);
    for (const attempt of [() => Exclusive.lock({ name, dir, ...portable }), () => Exclusive.holder(name, { dir, ...portable })]) {
      const error = t.throws(attempt, { instanceOf: LockFileError }, what);
      t.is(error?.code, 'ERR_LOCK_FILE_UNSAFE', what);
      t.is(error?.path, path, what);
      t.true(error.message.includes(path) && error.message.includes('`dir` option'), error?.message);
    }
  }
  t.is(readFileSync(victim, 'utf8'), 'precious');
  t.false(existsSync(join(dir, 'nowhere')), 'the dangling symlink was not followed to create its target');
  t.deepEqual(
    readdirSync(dir).filter((file) => file.endsWith('.tmp') || file.endsWith('.reclaim')),
    []
  );
});

test('a symlink planted at the reclaim guard of a stale lock is refused too', async (t) => {
  const dir = lockDir();
  const path = claimPath('guarded', dir);
  const staleToken = token();
  plant(path, { pid: await deadPid(), start: '1' }, { token: staleToken, boot: BOOT });
  const guard = `${path}.${staleToken}.reclaim`;
  symlinkSync(join(dir, 'elsewhere'), guard);
  const error = t.throws(() => Exclusive.lock({ name: 'guarded', dir, ...portable }), { instanceOf: LockFileError });
  t.is(error?.code, 'ERR_LOCK_FILE_UNSAFE');
  t.is(error?.path, guard);
  t.true(existsSync(path), 'the stale file is kept while its guard is unusable');
  t.false(existsSync(join(dir, 'elsewhere')));
});

test('a reclaimer that died holding the guard does not block the lock: its guard is reclaimed in turn', async (t) => {
  const dir = lockDir();
  const path = claimPath('crashed', dir);
  const staleToken = token();
  plant(path, { pid: await deadPid(), start: '1' }, { token: staleToken, boot: BOOT });
  const guardToken = token();
  plant(`${path}.${staleToken}.reclaim`, { pid: await deadPid(), start: '1' }, { token: guardToken, boot: BOOT });
  // And the guard's guard too (two crashes mid-reclaim in a row).
  plant(`${path}.${guardToken}.reclaim`, { pid: await deadPid(), start: '1' }, { token: token(), boot: BOOT });
  t.deepEqual(tryLock('crashed', dir), { acquired: true });
  t.deepEqual(readdirSync(dir), [], 'the lock file and both stale guards are gone');
});

test('while a live process reclaims (holds the guard), the lock reads as held and its stale file is left to it', async (t) => {
  const dir = lockDir();
  const sleep = await sleeper(t);
  const path = claimPath('reclaiming', dir);
  const staleToken = token();
  plant(path, { pid: await deadPid(), start: '1' }, { token: staleToken, boot: BOOT });
  plant(`${path}.${staleToken}.reclaim`, { pid: sleep.pid, start: processStartTime(sleep.pid)! }, { token: token(), boot: BOOT });
  t.deepEqual(tryLock('reclaiming', dir), { acquired: false, pid: null });
  t.true(existsSync(path), 'the stale file is left to the live reclaimer');
});

test('release removes the lock file only while it is still ours', async (t) => {
  const dir = lockDir();
  const sleep = await sleeper(t);
  const lock = Exclusive.lock({ name: 'replaced', dir, ...portable });
  // Someone replaced the file (by hand, or a reclaimer that wrongly judged us dead).
  const other = join(dir, 'other');
  const bytes = plant(other, { pid: sleep.pid, start: processStartTime(sleep.pid)! }, { token: token(), boot: BOOT });
  renameSync(other, lock.lockfile);
  await lock.release();
  t.deepEqual(readFileSync(lock.lockfile), bytes);
});

test('watch() reports the lock file appearing and disappearing, and ignores other files', async (t) => {
  const dir = lockDir();
  const driver = createPortableDriver();
  const path = driver.locate('watched', dir);
  let calls = 0;
  const stop = driver.watch!(path, () => calls++);
  if (stop === undefined) return t.fail('cannot watch the lock directory');
  t.teardown(stop);
  // A plain watcher on the directory tells us when an event has been delivered
  // (both share one inotify watch, so they see each event in the same turn).
  const seen = new Set<string>();
  const raw = watch(dir, (_event, file) => seen.add(String(file)));
  t.teardown(() => raw.close());
  writeFileSync(join(dir, 'exclusive-process.other.pid'), '');
  await until(() => seen.has('exclusive-process.other.pid'));
  t.is(calls, 0, 'another lock file does not wake us');
  const lock = driver.tryLock(path, { name: 'watched', pid: process.pid }) as { release(): void };
  await until(() => calls > 0);
  const afterLock = calls;
  lock.release();
  await until(() => calls > afterLock);
  t.pass();
});

/** Resolves once `condition` holds; fails the test after 30 s (a generous bound for a loaded machine). */
async function until(condition: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 30_000; !condition();) {
    if (Date.now() > deadline) throw new Error('condition not reached within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Environment of a process that cannot load native addons (Node's own switch, as under the permission model). */
const noAddons = (): NodeJS.ProcessEnv => ({ NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --no-addons` });

test('without native addons the default driver fails with ERR_DRIVER_UNAVAILABLE saying how to choose portable, and holds nothing', async (t) => {
  const dir = lockDir();
  const result = await run('try-lock.ts', ['no-addons', dir, ''], noAddons());
  t.not(result.code, 0);
  t.regex(result.stderr, /code: 'ERR_DRIVER_UNAVAILABLE'/);
  t.true(
    result.stderr.includes(
      "The native flock binding (ffi-rs) cannot load on linux-x64: Cannot load native addon because loading addons is disabled. Choose the portable driver explicitly: driver: 'portable' in code, --driver portable for the exclusive command"
    ),
    result.stderr
  );
  t.deepEqual(readdirSync(dir), [], 'no lock file: it never switched drivers');
  t.like(
    JSON.parse((await run('try-lock.ts', ['no-addons', dir, 'portable'], noAddons())).stdout),
    { acquired: true },
    'explicitly portable, it works'
  );
});

test('a --no-addons process (portable) and a normal one (posix) never both hold a name, in either order', async (t) => {
  const dir = lockDir();
  // A posix holder: the portable process is refused and names it.
  const posix = start('hold.ts', ['mixed', dir, 'posix']);
  t.teardown(() => posix.child.kill('SIGKILL'));
  await posix.waitFor('held');
  t.like(JSON.parse((await run('try-lock.ts', ['mixed', dir, 'portable'], noAddons())).stdout), {
    acquired: false,
    holder: posix.child.pid,
  });
  t.like(Exclusive.holder('mixed', { dir, ...portable }), { pid: posix.child.pid });
  posix.child.kill('SIGKILL');
  await posix.finished;
  // A portable holder: the posix process is refused and names it.
  const other = start('hold.ts', ['mixed', dir, 'portable'], noAddons());
  t.teardown(() => other.child.kill('SIGKILL'));
  await other.waitFor('held');
  t.like(JSON.parse((await run('try-lock.ts', ['mixed', dir, 'posix'])).stdout), { acquired: false, holder: other.child.pid });
  t.like(Exclusive.holder('mixed', { dir, driver: 'posix' }), { pid: other.child.pid });
  other.child.kill('SIGKILL');
  await other.finished;
  t.like(JSON.parse((await run('try-lock.ts', ['mixed', dir, 'posix'])).stdout), { acquired: true }, 'free once it is dead');
});

test('a posix process that locked and released a name, and still runs, does not keep it from a portable one', async (t) => {
  const dir = lockDir();
  const idle = start('lock-then-idle.ts', [dir, 'exclusive']);
  t.teardown(() => idle.child.kill('SIGKILL'));
  await idle.waitFor('locked');
  t.true(existsSync(lockFilePath('idle', dir)), 'its lock file, naming it, stays open for its next acquisition');
  t.like(JSON.parse((await run('try-lock.ts', ['idle', dir, 'portable'], noAddons())).stdout), { acquired: true });
});

test('3 posix processes and 3 --no-addons portable processes x 100 increments under one name: the counter is exact', async (t) => {
  const dir = lockDir();
  const counter = join(dir, 'counter');
  writeFileSync(counter, '0');
  const results = await Promise.all([
    ...['async', 'sync', 'async'].map((mode) => run('counter.ts', [dir, 'posix', counter, '100', mode])),
    ...['async', 'sync', 'async'].map((mode) => run('counter.ts', [dir, 'portable', counter, '100', mode], noAddons())),
  ]);
  for (const result of results) t.is(result.code, 0, result.stderr);
  t.is(readFileSync(counter, 'utf8'), '600');
});

test('worker threads of one process (one pid) exclude each other through the portable driver without native addons', async (t) => {
  const dir = lockDir();
  const counter = join(dir, 'counter');
  writeFileSync(counter, '0');
  const result = await run('workers.ts', [dir, counter, '4', '200', '', 'portable'], noAddons());
  t.is(result.code, 0, result.stderr);
  t.is(readFileSync(counter, 'utf8'), '800');
  t.deepEqual(readdirSync(dir), ['counter'], 'every thread removed its lock file and temp files');
});

test('list() names held and stale lock files, long (hashed) names included', async (t) => {
  const dir = lockDir();
  const long = `report for ${'x'.repeat(300)}`;
  const driver = createPortableDriver();
  const held = Exclusive.lock({ name: long, dir, ...portable });
  t.teardown(() => void held.release());
  plant(claimPath('stale', dir), { pid: await deadPid(), start: '1' });
  writeFileSync(join(dir, 'unrelated.lock'), 'not ours');
  t.deepEqual((driver.list!(dir) as string[]).sort(), [long, 'stale'].sort());
});

test("leftovers of processes that died mid-acquisition (a temp file, a finished reclaim's guard) are swept by the next reclaim", async (t) => {
  const dir = lockDir();
  const path = claimPath('litter', dir);
  const deadToken = token();
  // Died before linking its claim: a temp file nobody will link.
  plant(`${path}.${token()}.tmp`, { pid: await deadPid(), start: '1' }, { token: token(), boot: BOOT });
  // Died after removing a stale claim, before removing its guard: that guard's name never comes up again.
  plant(`${path}.${deadToken}.reclaim`, { pid: await deadPid(), start: '1' }, { token: token(), boot: BOOT });
  // A live reclaimer's guard, and another lock's temp file whose name starts like ours: not ours to sweep.
  const sleep = await sleeper(t);
  const liveGuard = `${path}.${token()}.reclaim`;
  plant(liveGuard, { pid: sleep.pid, start: processStartTime(sleep.pid)! }, { token: token(), boot: BOOT });
  const otherLock = `${claimPath('litter.lock.x', dir)}.${token()}.tmp`;
  plant(otherLock, { pid: await deadPid(), start: '1' }, { token: token(), boot: BOOT });
  // The stale claim whose reclaim shows a process died here.
  plant(path, { pid: await deadPid(), start: '1' }, { token: token(), boot: BOOT });
  t.deepEqual(tryLock('litter', dir), { acquired: true });
  t.deepEqual(
    readdirSync(dir)
      .map((file) => join(dir, file))
      .sort(),
    [liveGuard, otherLock].sort()
  );
});

test('a zombie holder (dead, never reaped by its parent) is dead: its lock is reclaimed at once', async (t) => {
  const dir = lockDir();
  // The shell execs `sleep`, which never reaps: the holder becomes a zombie when killed.
  const parent = spawn(
    'sh',
    ['-c', `"${process.execPath}" --import tsx "${join(FIXTURES, 'hold.ts')}" zombie "${dir}" portable & exec sleep 60`],
    { stdio: ['ignore', 'pipe', 'inherit'] }
  );
  t.teardown(() => parent.kill('SIGKILL'));
  const holder = await heldPid(parent);
  t.teardown(() => {
    try {
      process.kill(holder, 'SIGKILL');
    } catch {
      // Already dead.
    }
  });
  t.like(tryLock('zombie', dir), { acquired: false, pid: holder });
  process.kill(holder, 'SIGKILL');
  while (!readFileSync(`/proc/${holder}/stat`, 'latin1').includes(') Z ') || otherThreads(holder).length > 0)
    await new Promise((resolve) => setTimeout(resolve, 5));
  t.deepEqual(tryLock('zombie', dir), { acquired: true });
});

/** The threads of `pid` other than its main one ([] once it is gone). */
function otherThreads(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`).filter((tid) => tid !== String(pid));
  } catch {
    return [];
  }
}

/** Size of `file`, 0 while it does not exist. */
function sizeOf(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}

test('a holder whose main thread has exited while its worker threads still write is alive: its lock is kept until every thread is gone', async (t) => {
  const dir = lockDir();
  const out = join(dir, 'out');
  const holder = start('threaded-holder.ts', ['threads', dir, out, 'exit-main']);
  const pid = holder.child.pid!;
  t.teardown(() => holder.child.kill('SIGKILL'));
  await holder.waitFor('held');
  while (!readFileSync(`/proc/${pid}/stat`, 'latin1').includes(') Z ')) await new Promise((resolve) => setTimeout(resolve, 5));
  t.true(otherThreads(pid).length > 0, 'the main thread is a zombie, other threads run');
  const before = sizeOf(out);
  t.deepEqual(tryLock('threads', dir), { acquired: false, pid }, 'held while its threads run');
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.true(sizeOf(out) > before, 'its workers were still writing');
  t.deepEqual(tryLock('threads', dir), { acquired: false, pid });
  holder.child.kill('SIGKILL');
  // Until the parent (this process) reaps it, the zombie main thread stays: spin without yielding, so it is not reaped.
  let attempts = 0;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; attempts++) {
    if (tryLock('threads', dir).acquired) {
      // Threads never come back: one seen now was there during the acquisition.
      t.deepEqual(otherThreads(pid), [], 'no thread of the holder remained when the lock was taken');
      break;
    }
  }
  t.deepEqual(tryLock('threads', dir), { acquired: true }, `taken once every thread had gone (${attempts} attempts)`);
});

test('kill -9 of a multi-threaded holder doing I/O: the lock is never taken while a thread of it remains (10 rounds)', async (t) => {
  const dir = lockDir();
  for (let round = 0; round < 10; round++) {
    const holder = start('threaded-holder.ts', ['kill9', dir, join(dir, 'out'), 'stay']);
    const pid = holder.child.pid!;
    t.teardown(() => holder.child.kill('SIGKILL'));
    await holder.waitFor('held');
    t.deepEqual(tryLock('kill9', dir), { acquired: false, pid });
    holder.child.kill('SIGKILL');
    for (;;) {
      if (tryLock('kill9', dir).acquired) {
        t.deepEqual(otherThreads(pid), [], `round ${round}: taken while threads of the holder remained`);
        break;
      }
    }
    await holder.finished;
  }
});

test('a holder in another time namespace (unshare -T) is not taken for a reused pid: its start time reads differently from here', async (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root for unshare -T');
  const dir = lockDir();
  const child = spawn(
    'unshare',
    ['-T', '--boottime', '100000', process.execPath, '--import', 'tsx', join(FIXTURES, 'hold.ts'), 'timens', dir, 'portable'],
    { stdio: ['ignore', 'pipe', 'inherit'] }
  );
  t.teardown(() => child.kill('SIGKILL'));
  const holder = await heldPid(child);
  const record = JSON.parse(readFileSync(claimPath('timens', dir), 'utf8').split('\n')[0]) as { start: string };
  t.not(record.start, processStartTime(holder), 'the start times differ between the namespaces');
  t.like(tryLock('timens', dir), { acquired: false, pid: holder });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  t.deepEqual(tryLock('timens', dir), { acquired: true }, 'and once it is dead, reclaimed');
});

test('a claim that cannot be removed at release (read-only file system): release() throws and the lock stays held, not falsely free', async (t) => {
  const dir = lockDir();
  try {
    execFileSync('mount', ['--bind', dir, dir], { stdio: 'ignore' });
  } catch {
    return t.pass('needs a bind mount (root with CAP_SYS_ADMIN)');
  }
  t.teardown(() => execFileSync('umount', [dir]));
  const lock = Exclusive.lock({ name: 'ro', dir, ...portable });
  execFileSync('mount', ['-o', 'remount,ro,bind', dir]);
  const error = await t.throwsAsync(lock.release(), { instanceOf: LockFileError });
  t.true(['ERR_LOCK_PERMISSION', 'ERR_LOCK_IO'].includes(error.code), error?.code);
  t.like(tryLock('ro', dir), { acquired: false, pid: process.pid }, 'the claim is still there, and says so');
  execFileSync('mount', ['-o', 'remount,rw,bind', dir]);
  t.like(
    JSON.parse((await run('try-lock.ts', ['ro', dir, 'portable'])).stdout),
    { acquired: false, holder: process.pid },
    'held until this process exits, whose cleanup removes it'
  );
});

test('a process that cannot see its pid namespace (no /proc) does not judge a holder it cannot see dead', async (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root for unshare -p');
  const dir = lockDir();
  const lock = Exclusive.lock({ name: 'blind', dir, ...portable });
  t.teardown(() => void lock.release());
  // A new pid namespace, where our pid does not exist, and without /proc to tell it so.
  const script = `umount -l /proc && exec "${process.execPath}" --import tsx "${join(FIXTURES, 'try-lock.ts')}" blind "${dir}" portable`;
  const output = execFileSync('unshare', ['-p', '-f', '-m', '--propagation', 'private', 'sh', '-c', script], {
    encoding: 'utf8',
    cwd: join(FIXTURES, '..', '..'),
  });
  t.like(JSON.parse(output), { acquired: false });
});

test("under /proc mounted hidepid=2, a dead holder whose pid now runs another user's process is dead; a live holder hidden from us is held", async (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root for unshare, runuser and ns_last_pid');
  const build = buildForUsers(['test/fixtures/hold.ts', 'test/fixtures/try-lock.ts']);
  t.teardown(() => build.remove());
  const dir = lockDir();
  chmodSync(dir, 0o1777);
  // In a private pid namespace with its own /proc (hidepid=2: users see only
  // their own processes), where nothing else forks, so a pid can be reused on purpose.
  const script = `
    set -e
    mount -o remount,hidepid=2 /proc
    try() { runuser -u nobody -- "$NODE" "$B/bin/try-lock.js" "$1" "$D" portable; }
    started() { until grep -q '^held' "$1"; do sleep 0.02; done; sed -n 's/^held \\([0-9]*\\) .*/\\1/p' "$1"; }
    "$NODE" "$B/bin/hold.js" hidden "$D" portable > "$D/root.out" &
    echo "root-holder $(started "$D/root.out") $(try hidden)"
    runuser -u nobody -- "$NODE" "$B/bin/hold.js" reused "$D" portable > "$D/nobody.out" &
    P=$(started "$D/nobody.out")
    echo "nobody-holder $P $(try reused)"
    kill -9 "$P"; wait $! || true
    echo $((P - 1)) > /proc/sys/kernel/ns_last_pid
    sleep 60 &
    echo "root-process $! $(try reused)"
  `;
  const output = execFileSync('unshare', ['-mpf', '--mount-proc', 'sh', '-c', script], {
    encoding: 'utf8',
    cwd: build.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE: process.execPath, B: build.dir, D: dir },
  });
  const lines = Object.fromEntries(
    output
      .trim()
      .split('\n')
      .map((line) => {
        const [what, pid, ...json] = line.split(' ');
        return [what, { pid: Number(pid), result: JSON.parse(json.join(' ')) as Record<string, unknown> }];
      })
  );
  const { 'root-holder': hidden, 'nobody-holder': holder, 'root-process': reused } = lines;
  t.like(hidden.result, { acquired: false, holder: hidden.pid }, "root's live holder, hidden from nobody, is held");
  t.like(holder.result, { acquired: false, holder: holder.pid }, 'nobody sees its own live holder');
  t.is(reused.pid, holder.pid, "the dead holder's pid now runs root's sleep");
  t.like(reused.result, { acquired: true }, 'a pid hidden from nobody is not the holder nobody recorded');
});

test('lock files and claims are 0644 whatever the umask (077 here), so other users can see them held', async (t) => {
  const dir = lockDir();
  for (const driver of ['posix', 'portable'] as const) {
    const holder = startCommand(
      '/bin/sh',
      [
        '-c',
        'umask 077 && exec "$@"',
        'sh',
        process.execPath,
        '--import',
        'tsx',
        join(FIXTURES, 'hold.ts'),
        `umask-${driver}`,
        dir,
        driver,
      ],
      { cwd: ROOT }
    );
    t.teardown(() => holder.child.kill('SIGKILL'));
    const [, lockfile] = /held \d+ (\S+)/.exec(await holder.waitFor('held'))!;
    t.is(statSync(lockfile).mode & 0o777, 0o644, `the ${driver} driver's ${lockfile}`);
  }
});

/** True once a modes.ts process logged its entry into a hold in `log` (its claim is created before: it may still back off). */
const entered = (log: string): boolean => existsSync(log) && readFileSync(log, 'utf8').includes(' E ');

/** The record line of the claim file at `path`. */
const recordIn = (path: string): { pid: number; mode?: string } => JSON.parse(readFileSync(path, 'utf8').split('\n')[0]) as { pid: number };

test('portable modes: a kill -9ed reader leaves its slot claim, reclaimed by the next writer at once; a slot claim naming a reused pid holds nothing', async (t) => {
  const dir = lockDir();
  const claim = claimPath('modes', dir);
  const slot = slotClaimPath(claim, 0);
  const log = join(dir, 'log');
  const reader = start('modes.ts', ['reader', dir, 'portable', log, '60000']);
  t.teardown(() => reader.child.kill('SIGKILL'));
  await until(() => entered(log));
  t.like(recordIn(slot), { pid: reader.child.pid, mode: 'shared' });
  const refused = t.throws(() => Exclusive.lock({ name: 'modes', dir, ...portable }), { instanceOf: CannotAcquireLock });
  t.is(refused.pid, reader.child.pid!);
  reader.child.kill('SIGKILL');
  await reader.finished;
  t.true(existsSync(slot), 'kill -9 leaves the claim behind');
  const lock = Exclusive.lock({ name: 'modes', dir, ...portable }); // no wait: the dead reader's claim is reclaimed in this one try
  t.false(existsSync(slot));
  await lock.release();
  // A slot claim (and the marker a reader makes) naming a live process: held with its start time, not with another one.
  const sleep = await sleeper(t);
  const startTime = processStartTime(sleep.pid)!;
  writeFileSync(slotsMarkerPath(claim), '');
  for (const [start, held] of [
    [startTime, true],
    [String(Number(startTime) + 1), false],
  ] as const) {
    writeFileSync(slot, encodeRecord({ name: 'modes', pid: sleep.pid, start, host: hostname(), mode: 'shared' }));
    t.deepEqual(
      Exclusive.holders('modes', { dir, ...portable }).map((holder) => holder.pid),
      held ? [sleep.pid] : []
    );
    t.deepEqual(tryLock('modes', dir), held ? { acquired: false, pid: sleep.pid } : { acquired: true });
    t.is(existsSync(slot), held, held ? "a live holder's claim is left alone" : "a reused pid's claim is reclaimed");
  }
  t.is(sleep.exitCode, null, 'the unrelated process was not touched');
});

test("portable modes: a waiting writer's gate claim keeps new readers out; kill -9ed, its gate claim is reclaimed by the next reader", async (t) => {
  const dir = lockDir();
  const log = join(dir, 'log');
  const claim = claimPath('modes', dir);
  const reader = start('modes.ts', ['reader', dir, 'portable', log, '60000']);
  t.teardown(() => reader.child.kill('SIGKILL'));
  await until(() => entered(log));
  const writer = start('modes.ts', ['late-writer', dir, 'portable', log, '0']);
  t.teardown(() => writer.child.kill('SIGKILL'));
  const gate = gateClaimPath(claim);
  await until(() => existsSync(gate));
  t.is(recordIn(gate).pid, writer.child.pid!);
  const shared = { name: 'modes', dir, mode: 'shared', ...portable } as const;
  // A reader alone inside, and yet a new reader waits: behind the writer.
  t.throws(() => Exclusive.lock(shared), { instanceOf: CannotAcquireLock });
  writer.child.kill('SIGKILL');
  await writer.finished;
  t.true(existsSync(gate), 'kill -9 leaves the gate claim behind');
  const lock = Exclusive.lock(shared);
  t.false(existsSync(gate));
  t.deepEqual(
    Exclusive.holders('modes', { dir, ...portable })
      .map((holder) => holder.pid)
      .sort(),
    [reader.child.pid!, process.pid].sort()
  );
  await lock.release();
});

test('portable modes: shared and counted holders that exit leave no file of the name behind', async (t) => {
  const dir = lockDir();
  const log = join(dir, 'log');
  const runs = [
    run('modes.ts', ['reader', dir, 'portable', log, '100', '300']),
    run('modes.ts', ['reader', dir, 'portable', log, '100', '300']),
  ];
  for (const result of await Promise.all(runs)) t.is(result.code, 0, result.stderr);
  t.deepEqual(readdirSync(dir), ['log']);
  t.is((await run('modes.ts', ['counted', dir, 'portable', log, '3', '20'])).code, 0);
  t.deepEqual(readdirSync(dir), ['log']);
});

test('portable modes: a symlink or FIFO planted at a slot or gate claim is refused with ERR_LOCK_FILE_UNSAFE and left untouched; a posix holder is not fooled by it', async (t) => {
  const dir = lockDir();
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious');
  const plants: Array<[string, (claim: string) => string]> = [
    ['slot', (claim) => slotClaimPath(claim, 0)],
    ['gate', (claim) => gateClaimPath(claim)],
  ];
  for (const [where, pathOf] of plants) {
    for (const [what, make] of [
      ['symlink', (path: string) => symlinkSync(victim, path)],
      ['fifo', (path: string) => execFileSync('mkfifo', [path])],
    ] as const) {
      const name = `unsafe-${where}-${what}`;
      const path = pathOf(claimPath(name, dir));
      make(path);
      const error = t.throws(() => Exclusive.lock({ name, dir, mode: 'shared', ...portable }), { instanceOf: LockFileError }, name);
      t.is(error?.code, 'ERR_LOCK_FILE_UNSAFE', name);
      t.is(error?.path, path, name);
      t.true(lstatSync(path).isSymbolicLink() || lstatSync(path).isFIFO(), name);
    }
  }
  t.is(readFileSync(victim, 'utf8'), 'precious');
  // A live reader (another process) beside a planted slot file: a posix writer still sees the reader.
  const log = join(dir, 'log');
  const reader = start('modes.ts', ['reader', dir, 'portable', log, '60000']);
  t.teardown(() => reader.child.kill('SIGKILL'));
  await until(() => entered(log));
  symlinkSync(victim, slotClaimPath(claimPath('modes', dir), 5));
  const refused = t.throws(() => Exclusive.lock({ name: 'modes', dir, driver: 'posix' }), { instanceOf: CannotAcquireLock });
  t.is(refused.pid, reader.child.pid!);
});
