import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './processes.js';

/**
 * A copy of the package in `<root>/pkg` (its sources, package.json and
 * tsconfigs, with the repository's node_modules linked), so builds and packs
 * leave the working tree's own dist/ alone. Returns the copy's directory.
 */
export function packageCopy(root: string): string {
  const pkg = join(root, 'pkg');
  mkdirSync(pkg);
  for (const entry of ['src', 'package.json', 'tsconfig.json', 'tsconfig.build.json'])
    cpSync(join(ROOT, entry), join(pkg, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  return pkg;
}

/** Compiles a package copy into its dist/ (tsconfig.build.json); returns what tsc printed (it emits despite type errors). */
export function compileCopy(pkg: string): string {
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: pkg,
    encoding: 'utf8',
  });
  return `${tsc.stdout}${tsc.stderr}`;
}
