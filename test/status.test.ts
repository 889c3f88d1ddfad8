// `exclusive status` listing a shared lock directory where anyone may have
// planted entries named like ours.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, listedLocks, lockDir, start } from './helpers/processes.js';

const CLI = join(ROOT, 'src', 'cli.ts');

function exclusive(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
}

/** Plants a directory, a FIFO, a symlink, a hard link and an empty-named lock file among real locks (`suffix`: the driver's). */
function plantJunk(dir: string, suffix: string): void {
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'not a lock\n');
  mkdirSync(join(dir, `exclusive-process.a-directory${suffix}`));
  execFileSync('mkfifo', [join(dir, `exclusive-process.a-fifo${suffix}`)]);
  symlinkSync(victim, join(dir, `exclusive-process.a-symlink${suffix}`));
  symlinkSync(join(dir, 'nowhere'), join(dir, `exclusive-process.a-dangling-symlink${suffix}`));
  linkSync(victim, join(dir, `exclusive-process.a-hard-link${suffix}`));
  writeFileSync(join(dir, `exclusive-process.${suffix}`), '');
}

for (const [driver, suffix] of [
  ['posix', '.lock'],
  ['portable', '.pid'],
] as const) {
  test(`${driver}: junk named like a lock file is skipped and the real locks are listed`, async (t) => {
    const dir = lockDir();
    const holder = start('hold.ts', ['real', dir, driver]);
    t.teardown(() => holder.child.kill('SIGKILL'));
    await holder.waitFor('held');
    plantJunk(dir, suffix);
    // The portable driver reads a hard-linked file like any claim (its own have two links for an instant): garbage in it reads as stale, so free.
    const expected = [
      ...(driver === 'portable' ? [{ name: 'a-hard-link', state: 'free', pid: null }] : []),
      { name: 'real', state: 'held', pid: holder.child.pid },
    ];

    const json = exclusive(['status', '--dir', dir, '--driver', driver, '--json'], { NODE_DEBUG: 'exclusive-process' });
    t.is(json.status, 0, json.stderr);
    t.deepEqual(listedLocks(json.stdout), expected);
    for (const junk of ['a-directory', 'a-fifo', 'a-symlink', 'a-dangling-symlink', '']) {
      t.true(
        json.stderr.includes(`skipping ${join(dir, `exclusive-process.${junk}${suffix}`)}`),
        `NODE_DEBUG says why ${junk} is skipped: ${json.stderr}`
      );
    }

    const table = exclusive(['status', '--dir', dir, '--driver', driver]);
    t.is(table.status, 0, table.stderr);
    t.is(table.stderr, '');
    t.deepEqual(
      table.stdout
        .split('\n')
        .slice(1, -1)
        .map((line) => line.split(/\s+/).slice(0, 3).join(' ')),
      expected.map((row) => `${row.name} ${row.state} ${row.pid ?? '-'}`)
    );
  });
}

// Each driver's holder() sees the other's holders (on Linux), so its listing must name them too.
for (const [holding, listing] of [
  ['portable', 'posix'],
  ['posix', 'portable'],
] as const) {
  test(`a name held only through the ${holding} driver is listed held by the ${listing} driver's status`, async (t) => {
    const dir = lockDir();
    const holder = start('hold.ts', ['fresh', dir, holding]);
    t.teardown(() => holder.child.kill('SIGKILL'));
    await holder.waitFor('held');

    const json = exclusive(['status', '--dir', dir, '--driver', listing, '--json']);
    t.is(json.status, 0, json.stderr);
    t.deepEqual(listedLocks(json.stdout), [{ name: 'fresh', state: 'held', pid: holder.child.pid! }]);
    const table = exclusive(['status', '--dir', dir, '--driver', listing]);
    t.is(table.status, 0, table.stderr);
    t.deepEqual(
      table.stdout
        .split('\n')
        .slice(1, -1)
        .map((line) => line.split(/\s+/).slice(0, 3).join(' ')),
      [`fresh held ${holder.child.pid}`]
    );
  });
}
