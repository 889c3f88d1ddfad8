// holder() and `exclusive status` on the file systems users keep lock
// directories on, each mounted by the test: /proc/locks must find the holder
// whatever device number the file system reports to stat (btrfs gives each
// subvolume an anonymous device of its own).
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Exclusive } from '../src/index.js';
import { ROOT, start } from './helpers/processes.js';

const CLI = join(ROOT, 'src', 'cli.ts');

interface Mounted {
  /** The lock directory, on the file system under test. */
  dir: string;
  unmount(): void;
}

/** A scratch directory for images and mount points, removed with everything mounted in it. */
function scratch(t: ExecutionContext): string {
  const root = mkdtempSync(join(tmpdir(), 'exclusive-fs-test-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

/** A loop-mounted image of `size` made by `mkfs` (the image's path is appended to its arguments). */
function loopImage(root: string, size: string, mkfs: string[]): Mounted {
  const image = join(root, 'image');
  const mountPoint = join(root, 'mnt');
  mkdirSync(mountPoint);
  execFileSync('truncate', ['-s', size, image]);
  execFileSync(mkfs[0], [...mkfs.slice(1), image], { stdio: 'ignore' });
  execFileSync('mount', ['-o', 'loop', image, mountPoint]);
  return { dir: mountPoint, unmount: () => execFileSync('umount', ['-l', mountPoint]) };
}

const FILE_SYSTEMS: Record<string, (root: string) => Mounted> = {
  tmpfs(root) {
    const dir = join(root, 'mnt');
    mkdirSync(dir);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', dir]);
    return { dir, unmount: () => execFileSync('umount', ['-l', dir]) };
  },
  ext4: (root) => loopImage(root, '64M', ['mkfs.ext4', '-q', '-F']),
  xfs: (root) => loopImage(root, '320M', ['mkfs.xfs', '-q', '-f']),
  btrfs: (root) => loopImage(root, '256M', ['mkfs.btrfs', '-q', '-f']),
  'btrfs subvolume'(root) {
    const mounted = loopImage(root, '256M', ['mkfs.btrfs', '-q', '-f']);
    const dir = join(mounted.dir, 'locks');
    execFileSync('btrfs', ['subvolume', 'create', dir], { stdio: 'ignore' });
    return { dir, unmount: mounted.unmount };
  },
  overlayfs(root) {
    const [lower, upper, work, dir] = ['lower', 'upper', 'work', 'merged'].map((part) => join(root, part));
    for (const part of [lower, upper, work, dir]) mkdirSync(part);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, dir]);
    return { dir, unmount: () => execFileSync('umount', ['-l', dir]) };
  },
};

for (const [fs, mount] of Object.entries(FILE_SYSTEMS)) {
  test.serial(`${fs}: holder() and \`exclusive status\` name the holding process`, async (t) => {
    if (process.getuid?.() !== 0) return t.pass('needs root to mount file systems');
    const mounted = mount(scratch(t));
    t.teardown(() => mounted.unmount());
    const { dir } = mounted;
    if (fs.startsWith('btrfs')) t.log(`stat device ${statSync(dir).dev}`);
    const name = `on-${fs.replace(' ', '-')}`;
    const holder = start('hold.ts', [name, dir, 'posix']);
    t.teardown(() => holder.child.kill('SIGKILL'));
    await holder.waitFor('held');
    const pid = holder.child.pid!;

    t.like(Exclusive.holder(name, { dir }), { name, pid, driver: 'posix' });
    const conflict = t.throws(() => Exclusive.lock({ name, dir }));
    t.is((conflict as { pid?: unknown }).pid, pid, 'the conflict names the holder');

    const one = status(['status', name, '--dir', dir, '--json']);
    t.is(one.status, 1, `held: exit 1 (${one.stderr})`);
    t.like(JSON.parse(one.stdout), { name, state: 'held', pid });
    const table = status(['status', '--dir', dir]);
    t.is(table.status, 0, table.stderr);
    t.regex(table.stdout, new RegExp(`^${name}\\s+held\\s+${pid}\\s`, 'm'));

    holder.child.kill('SIGKILL');
    await holder.finished;
    t.is(Exclusive.holder(name, { dir }), null, 'free once the holder is dead');
    t.like(JSON.parse(status(['status', name, '--dir', dir, '--json']).stdout), { state: 'free', pid: null });
  });
}

function status(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
}
