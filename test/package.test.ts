// The package as users get it: packed with `npm pack` (which runs `prepack`,
// the real build), installed from the tarball into a fresh project, then
// used from ESM, CommonJS and TypeScript (tsx, and tsc for the types), and
// linted by publint and attw (are the types wrong), as `npm run lint:package` does.
import test from 'ava';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { FIXTURES, ROOT } from './helpers/processes.js';

const exec = promisify(execFile);
const CONSUMER = join(FIXTURES, 'package-consumer');
/** A TypeScript 5 project on `"moduleResolution": "node"` (node10), which ignores "exports". */
const NODE10_CONSUMER = join(FIXTURES, 'package-consumer-node10');
const BIN = join(ROOT, 'node_modules', '.bin');
/** Top-level entries of the work tree that are not sources of the package (built, installed or scratch). */
const NOT_COPIED = new Set(['node_modules', '.git', 'dist', '.tmp']);

let work = '';
let project = '';
let lockDir = '';
let tarball = '';
/** Paths inside the tarball, without the leading `package/`. */
let packed: string[] = [];
/** What `npm install <tarball>` printed on stderr. */
let installOutput = '';

async function run(command: string, args: string[], cwd: string): Promise<string> {
  return (await runBoth(command, args, cwd)).stdout;
}

async function runBoth(command: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await exec(command, args, { cwd, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}: ${(error as Error).message}\n${stdout ?? ''}\n${stderr ?? ''}`, {
      cause: error,
    });
  }
}

/** Runs a consumer script in the project and parses the one JSON line it prints. */
async function consume(command: string, args: string[]): Promise<Record<string, unknown>> {
  const stdout = await run(command, [...args, lockDir], project);
  return JSON.parse(stdout.trim()) as Record<string, unknown>;
}

test.before(async () => {
  work = mkdtempSync(join(tmpdir(), 'exclusive-package-'));
  // Pack a copy of the work tree, so the build (`prepack`) never rewrites the
  // dist/ that other processes may be using; the package.json, scripts and
  // sources are the repository's own.
  const source = join(work, 'source');
  cpSync(ROOT, source, {
    recursive: true,
    filter: (path) => {
      const top = relative(ROOT, path).split(sep)[0];
      return !NOT_COPIED.has(top) && !top.endsWith('.tgz');
    },
  });
  symlinkSync(join(ROOT, 'node_modules'), join(source, 'node_modules'), 'dir');
  // A module left in dist/ by an older build (a file since moved or deleted) must not be packed.
  mkdirSync(join(source, 'dist', 'drivers'), { recursive: true });
  writeFileSync(join(source, 'dist', 'drivers', 'stale-old-layout.js'), 'module.exports = {};\n');
  await run('npm', ['pack', '--pack-destination', work], source);
  tarball = join(
    work,
    readdirSync(work).find((file) => file.endsWith('.tgz'))!
  );
  packed = (await run('tar', ['-tzf', tarball], work))
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace(/^package\//, ''));

  project = join(work, 'project');
  lockDir = join(work, 'locks');
  mkdirSync(project);
  mkdirSync(lockDir);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'package-consumer', private: true, type: 'module' }));
  for (const file of readdirSync(CONSUMER)) cpSync(join(CONSUMER, file), join(project, file.replace(/\.txt$/, '')));
  mkdirSync(join(project, 'node10'));
  for (const file of readdirSync(NODE10_CONSUMER)) cpSync(join(NODE10_CONSUMER, file), join(project, 'node10', file.replace(/\.txt$/, '')));
  // TypeScript 7 no longer has node10 resolution: the old-project check runs TypeScript 5.
  const installed = await runBoth(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      tarball,
      'tsx',
      'typescript@7',
      'typescript5@npm:typescript@5.9',
      '@types/node@20',
    ],
    project
  );
  installOutput = installed.stdout + installed.stderr;
});

test.after.always(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

test('the tarball holds the build, without sources, tests or source maps', (t) => {
  t.deepEqual(
    packed.filter((path) => path.startsWith('src/') || path.startsWith('test/') || path.endsWith('.map')),
    []
  );
  for (const file of ['package.json', 'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts']) {
    t.true(packed.includes(file), `${file} is in the tarball`);
  }
});

test('every file or folder the README links to is in the tarball (docs, examples, changelog), so its links work in node_modules', (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const targets = [...readme.matchAll(/\]\((?:\.\/)?([^)#:\s]+)/g)].map((match) => match[1]);
  t.true(targets.length > 0);
  const missing = targets.filter((target) => !packed.some((path) => path === target || path.startsWith(`${target}/`)));
  t.deepEqual(missing, []);
});

test('every module in the tarball is built from a source file of today: nothing left in dist/ by an older build', (t) => {
  const modules = packed.filter((path) => /^dist\/.*\.m?js$/.test(path));
  t.true(modules.length > 30);
  const orphans = modules.filter((path) => {
    const source = path
      .replace(/^dist\//, 'src/')
      .replace(/\.js$/, '.ts')
      .replace(/\.mjs$/, '.mts');
    return !existsSync(join(ROOT, source));
  });
  t.deepEqual(orphans, []);
});

test('installing the tarball prints no npm warning about the package (no install-time script such as `prepare`)', (t) => {
  // npm 11 warns about any install script of a dependency not covered by
  // allowScripts, `prepare` included, although it never runs for a tarball.
  const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'exclusive-process', 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
  };
  const installTime = ['preinstall', 'install', 'postinstall', 'prepare'].filter((script) => manifest.scripts?.[script] !== undefined);
  t.deepEqual(
    installOutput.split('\n').filter((line) => /npm warn/i.test(line) && line.includes('exclusive-process')),
    []
  );
  t.deepEqual(installTime, []);
});

test('every file named by exports, main, types and bin is in the tarball', (t) => {
  const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'exclusive-process', 'package.json'), 'utf8')) as {
    main: string;
    types: string;
    bin?: Record<string, string>;
    exports: Record<string, unknown>;
  };
  const targets = new Set<string>([manifest.main, manifest.types, ...Object.values(manifest.bin ?? {})]);
  const collect = (value: unknown): void => {
    if (typeof value === 'string') targets.add(value);
    else if (typeof value === 'object' && value !== null) for (const inner of Object.values(value)) collect(inner);
  };
  collect(manifest.exports);
  const missing = [...targets].map((target) => target.replace(/^\.\//, '')).filter((target) => !packed.includes(target));
  t.deepEqual(missing, []);
});

for (const [title, file] of [
  ['ESM: import by name takes a real lock, and shares one instance with require()', 'esm.mjs'],
  ['CommonJS: require by name takes a real lock, and shares one instance with import()', 'cjs.cjs'],
] as const) {
  test(title, async (t) => {
    const seen = await consume('node', [file]);
    t.deepEqual(seen, {
      pid: seen.pid,
      sameInstance: true,
      driver: 'posix',
      holderPid: seen.pid,
      otherProcess: `CannotAcquireLock pid=${String(seen.pid)}`,
      afterRelease: null,
      wrapped: 5,
    });
    t.is(typeof seen.pid, 'number');
  });
}

test('TypeScript under tsx: a standard decorator, `using` and exclusive() take real locks', async (t) => {
  const seen = await consume(join('node_modules', '.bin', 'tsx'), ['typed.ts']);
  const held = `CannotAcquireLock pid=${String(seen.pid)}`;
  t.deepEqual(seen, {
    pid: seen.pid,
    decorated: { holderPid: seen.pid, otherProcess: held },
    usingHolder: seen.pid,
    usingOther: held,
    sameThread: seen.pid,
    afterUsing: null,
    doubled: 42,
  });
  t.is(typeof seen.pid, 'number');
});

test('TypeScript as CommonJS (.cts) under tsx resolves the require entry', async (t) => {
  const seen = await consume(join('node_modules', '.bin', 'tsx'), ['typed-cjs.cts']);
  t.deepEqual(seen, { pid: seen.pid, driver: 'posix', holderPid: seen.pid });
});

test('the types resolve from the installed package: tsc --noEmit passes for ESM and CommonJS consumers', async (t) => {
  // Fails on a missing declaration (TS7016 under strict) and on an unused @ts-expect-error,
  // so it also proves the types are the package's own and not `any`.
  const stdout = await run(join('node_modules', '.bin', 'tsc'), ['--noEmit', '-p', 'tsconfig.json'], project);
  t.is(stdout, '');
});

test('TypeScript 5 with "moduleResolution": "node" (node10) finds the types of every entry point', async (t) => {
  // node10 ignores "exports": `exclusive-process/postgres` and `/node-cron` resolve only through
  // the postgres/package.json and node-cron/package.json stubs. Fails on TS2307 (module not found) and on an
  // unused @ts-expect-error (the types are `any`).
  const stdout = await run(
    join('..', 'node_modules', 'typescript5', 'bin', 'tsc'),
    ['--noEmit', '-p', 'tsconfig.json'],
    join(project, 'node10')
  );
  t.is(stdout, '');
});

test('publint finds nothing to report in the tarball: no error, warning or suggestion', async (t) => {
  // --strict makes warnings fail the run; publint prints "All good!" only when
  // it has no message at all, suggestions included.
  const stdout = await run(join(BIN, 'publint'), ['run', '--strict', '--level', 'suggestion', tarball], work);
  t.regex(stdout, /All good!/, stdout);
});

/** One resolution attw computed: the types file and the JavaScript it stands for, relative to the package. */
interface AttwResolution {
  resolution?: { fileName: string };
  implementationResolution?: { fileName: string };
}

interface AttwReport {
  analysis: {
    problems: unknown[];
    entrypoints: Record<string, { resolutions: Record<string, AttwResolution> }>;
  };
}

test('attw: every entry point resolves to its own types and code under node10, node16 (CJS, ESM) and bundler, with no problem', async (t) => {
  // attw exits non-zero when it finds a problem: read its JSON report either way.
  const output = await exec(join(BIN, 'attw'), ['--profile', 'strict', '--format', 'json', tarball], {
    cwd: work,
    maxBuffer: 64 * 1024 * 1024,
  }).then(
    (done) => done.stdout,
    (error: { stdout?: string }) => error.stdout ?? ''
  );
  const report = JSON.parse(output) as AttwReport;
  const inPackage = (file: string | undefined): string => file?.replace('/node_modules/exclusive-process/', '') ?? 'unresolved';
  const resolved = Object.fromEntries(
    Object.entries(report.analysis.entrypoints).map(([entry, { resolutions }]) => [
      entry,
      Object.fromEntries(
        Object.entries(resolutions).map(([mode, found]) => [
          mode,
          `${inPackage(found.resolution?.fileName)} -> ${inPackage(found.implementationResolution?.fileName)}`,
        ])
      ),
    ])
  );
  const cjs = (name: string): string => `dist/${name}.d.ts -> dist/${name}.js`;
  const esm = (name: string): string => `dist/${name}.d.mts -> dist/${name}.mjs`;
  const manifest = 'package.json -> package.json';
  t.deepEqual(resolved, {
    '.': { node10: cjs('index'), 'node16-cjs': cjs('index'), 'node16-esm': esm('index'), bundler: esm('index') },
    './postgres': { node10: cjs('postgres'), 'node16-cjs': cjs('postgres'), 'node16-esm': esm('postgres'), bundler: esm('postgres') },
    './redis': { node10: cjs('redis'), 'node16-cjs': cjs('redis'), 'node16-esm': esm('redis'), bundler: esm('redis') },
    './node-cron': { node10: cjs('node-cron'), 'node16-cjs': cjs('node-cron'), 'node16-esm': esm('node-cron'), bundler: esm('node-cron') },
    './package.json': { node10: manifest, 'node16-cjs': manifest, 'node16-esm': manifest, bundler: manifest },
  });
  t.deepEqual(report.analysis.problems, []);
});

test('npm run lint:package passes on the tarball (publint and attw, as a developer runs them)', async (t) => {
  const stdout = await run('npm', ['run', '--silent', 'lint:package', '--', tarball], ROOT);
  t.regex(stdout, /All good!/);
  t.regex(stdout, /No problems found/);
});
