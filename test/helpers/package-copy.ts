import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './processes.js';

/**
 * A copy of the package in `<root>/pkg` (its sources, package.json, tsconfigs
 * and build script, with the repository's node_modules linked), so builds and
 * packs leave the working tree's own dist/ alone. Returns the copy's directory.
 */
export function packageCopy(root: string): string {
  const pkg = join(root, 'pkg');
  mkdirSync(pkg);
  for (const entry of ['src', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json'])
    cpSync(join(ROOT, entry), join(pkg, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  return pkg;
}

/** Builds a package copy into its dist/ as `npm run build` does (scripts/build.mjs); returns what it printed (tsc emits despite type errors). */
export function compileCopy(pkg: string): string {
  const build = spawnSync(process.execPath, [join(pkg, 'scripts', 'build.mjs')], { cwd: pkg, encoding: 'utf8' });
  return `${build.stdout}${build.stderr}`;
}
