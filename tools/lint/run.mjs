#!/usr/bin/env node
// `npm run lint [-- --fix] [paths...]`: ESLint (type-checked, --max-warnings 0)
// and Prettier over src, test, bench, examples and tools.
//
// The lint toolchain lives in tools/lint with its own lockfile because
// typescript-eslint needs TypeScript < 6.1 while the project builds with
// TypeScript 7 (no JS compiler API). It is installed here (`npm ci`) when
// missing or when its package-lock.json changed since the last install.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
const DEFAULT_TARGETS = ['src', 'test', 'bench', 'examples', 'tools'];
const FORMATTED = '**/*.{ts,mts,cts,js,mjs,cjs}';

const args = process.argv.slice(2);
const fix = args.includes('--fix');
const targets = args.filter((arg) => arg !== '--fix');

ensureInstalled();
const eslintOk = run('eslint', eslintArgs(targets.length > 0 ? targets : DEFAULT_TARGETS));
const prettierOk = run('prettier', prettierArgs(targets.length > 0 ? targets : DEFAULT_TARGETS));
process.exitCode = eslintOk && prettierOk ? 0 : 1;

/** Runs `npm ci` in tools/lint unless its node_modules matches package-lock.json (a stamp holds the lockfile's hash). */
function ensureInstalled() {
  const stamp = join(here, 'node_modules', '.lint-lock-hash');
  const hash = createHash('sha256')
    .update(readFileSync(join(here, 'package-lock.json')))
    .digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return;
  console.error('lint: installing the lint toolchain in tools/lint (npm ci)');
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--prefix', here], {
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (npm.status !== 0) {
    console.error('lint: npm ci in tools/lint failed');
    process.exit(npm.status ?? 1);
  }
  writeFileSync(stamp, hash);
}

function eslintArgs(paths) {
  const config = relative(root, join(here, 'eslint.config.mjs'));
  return ['--config', config, '--max-warnings', '0', ...(fix ? ['--fix'] : []), ...paths];
}

function prettierArgs(paths) {
  const globs = paths.map((path) => (/\.[cm]?[jt]s$/.test(path) ? path : `${path.replace(/\/$/, '')}/${FORMATTED}`));
  return [fix ? '--write' : '--check', '--log-level', 'warn', ...globs];
}

/** Runs a tool from tools/lint/node_modules in the repository root; true when it succeeded. */
function run(tool, toolArgs) {
  const bin = { eslint: 'eslint/bin/eslint.js', prettier: 'prettier/bin/prettier.cjs' }[tool];
  const result = spawnSync(process.execPath, [join(here, 'node_modules', bin), ...toolArgs], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) console.error(`lint: ${tool} failed`);
  return result.status === 0;
}
