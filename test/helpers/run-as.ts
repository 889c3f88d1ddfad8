import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { buildSync } from 'esbuild';
import { ROOT } from './processes.js';

/**
 * Running code as another user (the caller must be root). What such a
 * process runs must not come from the checkout: a clone inside root's home
 * or a `mktemp -d` folder (0700) cannot be read by `nobody`. So
 * {@link buildForUsers} bundles the scripts to plain JS in a world-readable
 * temp dir, with the native packages they load beside them.
 */

// runuser lives in sbin, which a minimal PATH (cron, some CI runners) leaves out.
const RUNUSER = ['/usr/sbin/runuser', '/sbin/runuser'].find((file) => existsSync(file)) ?? 'runuser';
const USERADD = ['/usr/sbin/useradd', '/sbin/useradd'].find((file) => existsSync(file)) ?? 'useradd';

/** The command and arguments that run `argv` as `user` (the caller must be root). */
export function asUser(user: string, argv: readonly string[]): [string, string[]] {
  return [RUNUSER, ['-u', user, '--', ...argv]];
}

/** Creates the system user `name` (no home, no login) unless it exists; safe to call from several test files at once. */
export function ensureUser(name: string): void {
  if (spawnSync('id', ['-u', name]).status === 0) return;
  const added = spawnSync(USERADD, ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { encoding: 'utf8' });
  // 9: created meanwhile by another test file.
  if (added.status !== 0 && added.status !== 9) throw new Error(`useradd ${name} failed: ${added.stderr}`);
}

/** The uid of user `name`. */
export function uidOf(name: string): number {
  return Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());
}

export interface UserBuild {
  /** The world-readable directory holding the build. */
  readonly dir: string;
  /** The argv that runs the bundled script `entry` (a path relative to the repository) with `args`. */
  argv(entry: string, args?: readonly string[]): string[];
  /** Deletes the build. */
  remove(): void;
}

/**
 * Bundles each of `entries` (TypeScript files of the repository, such as
 * `test/fixtures/try-lock.ts` or `src/cli.ts`) with the library into plain
 * JS in a fresh world-readable temp dir, with ffi-rs and its native binary
 * and package.json (the CLI reads its version there), so any user can run
 * them with plain `node`.
 */
export function buildForUsers(entries: readonly string[]): UserBuild {
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-users-'));
  chmodSync(dir, 0o755);
  const outFile = (entry: string): string => join(dir, 'bin', `${basename(entry).replace(/\.[cm]?ts$/, '')}.js`);
  for (const entry of entries) {
    buildSync({
      entryPoints: [join(ROOT, entry)],
      outfile: outFile(entry),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      external: ['ffi-rs'],
      logLevel: 'error',
    });
  }
  mkdirSync(join(dir, 'node_modules', '@yuuang'), { recursive: true });
  cpSync(join(ROOT, 'node_modules', 'ffi-rs'), join(dir, 'node_modules', 'ffi-rs'), { recursive: true });
  cpSync(join(ROOT, 'node_modules', '@yuuang'), join(dir, 'node_modules', '@yuuang'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  return {
    dir,
    argv: (entry, args = []) => [process.execPath, outFile(entry), ...args],
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
