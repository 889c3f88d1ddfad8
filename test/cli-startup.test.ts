// What the `exclusive` command loads to start: its bundle (dist/cli.js, the
// bin, and dist/cli/main.js, the command with every module of ours it
// imports, built as `npm run build` builds it) and only what the chosen
// driver needs (start-up time is Node's own plus that; the bench measures
// it). The built CLI runs with a preload that records, at exit, every module
// in require.cache and whether anything built a diagnostic report (ffi-rs's
// loader does, to tell glibc from musl: 5-8 ms). No timing is asserted.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { compileCopy, packageCopy } from './helpers/package-copy.js';

const PRELOAD = `
const { writeFileSync } = require('node:fs');
const report = process.report;
const getReport = report.getReport;
let reports = 0;
report.getReport = function (...args) { reports++; return getReport.apply(this, args); };
process.on('exit', () => writeFileSync(process.env.STARTUP_TRACE, JSON.stringify({ modules: Object.keys(require.cache), reports })));
`;

/** Modules the command never needs unless asked for: the decorator machinery, and the server driver's client. */
const NEVER = [/node_modules[\\/]reflect-metadata[\\/]/, /[\\/]api[\\/](decorator|exclusive|wrap)\.js$/];
const POSTGRES = [/node_modules[\\/]pg[\\/]/];
/** Our modules, as files: the bin and the bundle, never one module at a time (resolving forty of them was most of the start-up). */
const OURS = /[\\/]pkg[\\/]dist[\\/]/;

let root = '';
let cli = '';

test.before(() => {
  root = mkdtempSync(join(tmpdir(), 'exclusive-cli-startup-'));
  const pkg = packageCopy(root);
  const output = compileCopy(pkg);
  cli = join(pkg, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error(`build failed:\n${output}`);
  writeFileSync(join(root, 'preload.cjs'), PRELOAD);
  mkdirSync(join(root, 'locks'));
});

test.after.always(() => {
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

interface Trace {
  code: number | null;
  modules: string[];
  reports: number;
}

/** Runs the compiled CLI with the recording preload. */
function trace(args: readonly string[]): Trace {
  const out = join(root, `trace-${Math.random().toString(36).slice(2)}.json`);
  const run = spawnSync(process.execPath, ['--require', join(root, 'preload.cjs'), cli, ...args], {
    cwd: root,
    env: { ...process.env, STARTUP_TRACE: out },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const { modules, reports } = JSON.parse(readFileSync(out, 'utf8')) as { modules: string[]; reports: number };
  return { code: run.status, modules, reports };
}

function loaded(modules: readonly string[], patterns: readonly RegExp[]): string[] {
  return modules.filter((m) => patterns.some((p) => p.test(m)));
}

/** The source modules esbuild put in the bundle (it marks each with a `// src/...` line). */
function bundled(): string[] {
  return [...readFileSync(join(dirname(cli), 'cli', 'main.js'), 'utf8').matchAll(/^\/\/ (src\/\S+\.ts)$/gm)].map((m) => m[1]);
}

test('the command is two files of ours: the bin and its bundle, which holds no decorator machinery', (t) => {
  const { code, modules } = trace(['--dir', join(root, 'locks'), 'startup-run', '--', 'true']);
  t.is(code, 0);
  t.deepEqual(
    loaded(modules, [OURS]).map((m) => m.slice(m.lastIndexOf(`${sep}dist${sep}`) + 1)),
    [join('dist', 'cli.js'), join('dist', 'cli', 'main.js')]
  );
  const inBundle = bundled();
  t.true(inBundle.includes('src/drivers/posix/index.ts') && inBundle.includes('src/cli/run.ts'), inBundle.join(' '));
  t.deepEqual(
    inBundle.filter((m) => /^src\/api\/(decorator|exclusive|wrap)\.ts$/.test(m)),
    [],
    'the command never needs the decorator machinery'
  );
});

test('running a command loads neither reflect-metadata nor pg', (t) => {
  const { code, modules } = trace(['--dir', join(root, 'locks'), 'startup-run', '--', 'true']);
  t.is(code, 0);
  t.true(
    modules.some((m) => /node_modules[\\/]ffi-rs[\\/]index\.js$/.test(m)),
    'the posix driver did run'
  );
  t.deepEqual(loaded(modules, [...NEVER, ...POSTGRES]), []);
});

test('status loads neither reflect-metadata nor pg', (t) => {
  const { code, modules } = trace(['status', '--dir', join(root, 'locks')]);
  t.is(code, 0);
  t.deepEqual(loaded(modules, [...NEVER, ...POSTGRES]), []);
});

test('--driver postgres loads pg, and only then (the recording sees lazy loads)', (t) => {
  // Port 1: nothing listens, so the command fails after loading the driver and its client.
  const { code, modules } = trace(['status', '--driver', 'postgres', '--database-url', 'postgres://127.0.0.1:1/none']);
  t.not(code, 0);
  t.true(loaded(modules, POSTGRES).length > 0);
  t.deepEqual(loaded(modules, NEVER), []);
});

test('loading ffi-rs builds no diagnostic report where /usr/bin/ldd says glibc', (t) => {
  const ldd = existsSync('/usr/bin/ldd') ? readFileSync('/usr/bin/ldd', 'latin1') : '';
  if (process.platform !== 'linux' || ldd.includes('musl') || !/glibc|GNU C Library/.test(ldd)) {
    t.pass('not a glibc Linux: ffi-rs asks the report, as it always did');
    return;
  }
  const { code, modules, reports } = trace(['--dir', join(root, 'locks'), 'startup-report', '--', 'true']);
  t.is(code, 0);
  t.true(
    modules.some((m) => /node_modules[\\/]ffi-rs[\\/]index\.js$/.test(m)),
    'ffi-rs was loaded'
  );
  t.is(reports, 0);
});
