// The default name of a decorated method, for every way code reaches the
// decorator: tsc (CommonJS and ESM, with and without source maps, with
// tslib), tsx, SWC, Babel, Bun and Deno, in both decorator modes where the
// toolchain has them. Each app is a project of its own (its own package.json
// name) that links the built package, as `npm link` would; the expected names
// follow the README's rule: `<package>/<source file>:<Class>.<method>`, the
// source being the TypeScript file when a source map leads to it.
import test from 'ava';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FIXTURES, ROOT, startCommand, type Finished, type Started } from './helpers/processes.js';

const exec = promisify(execFile);
const BIN = join(ROOT, 'node_modules', '.bin');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const SOURCES = join(FIXTURES, 'toolchains');
/** How long a runtime may take to start and print its first line on a loaded machine. */
const STARTUP_MS = 120_000;

type Decorators = 'legacy' | 'standard';
interface App {
  dir: string;
  name: string;
}
interface AppOptions {
  type: 'commonjs' | 'module';
  decorators: Decorators;
  sourceMap?: boolean;
  importHelpers?: boolean;
  /** tsc's target. Default: es2022. */
  target?: string;
  /** More tsc options (sourceRoot, inlineSourceMap). */
  compilerOptions?: object;
}

let work = '';
let locks = '';
let apps = 0;

test.before(async () => {
  work = mkdtempSync(join(tmpdir(), 'exclusive-toolchains-'));
  locks = join(work, 'locks');
  mkdirSync(locks);
  // The package as built for release, outside the checkout.
  const pkg = join(work, 'exclusive-process');
  await exec(process.execPath, [TSC, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')]);
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir');
});

test.after.always(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

/** A fresh project named `app-<n>-<pid>` with test/fixtures/toolchains as src/, a tsconfig for `options`, and the package linked. */
function makeApp(options: AppOptions): App {
  const name = `app-${++apps}-${process.pid}`;
  const dir = join(work, name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  mkdirSync(join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: options.type }));
  cpSync(SOURCES, join(dir, 'src'), { recursive: true });
  const legacy = options.decorators === 'legacy';
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: options.target ?? 'es2022',
        module: 'nodenext',
        lib: ['es2023', 'esnext.disposable'],
        types: ['node'],
        strict: true,
        skipLibCheck: true,
        rootDir: 'src',
        outDir: 'dist',
        sourceMap: options.sourceMap ?? false,
        importHelpers: options.importHelpers ?? false,
        experimentalDecorators: legacy,
        emitDecoratorMetadata: legacy,
        ...options.compilerOptions,
      },
      include: ['src'],
    })
  );
  writeFileSync(join(dir, 'deno.json'), JSON.stringify({ compilerOptions: { experimentalDecorators: legacy } }));
  symlinkSync(join(work, 'exclusive-process'), join(dir, 'node_modules', 'exclusive-process'), 'dir');
  for (const linked of ['@types', 'tslib']) symlinkSync(join(ROOT, 'node_modules', linked), join(dir, 'node_modules', linked), 'dir');
  cpSync(join(FIXTURES, 'deco-utils'), join(dir, 'node_modules', 'deco-utils'), { recursive: true }); // a package composing decorators
  return { dir, name };
}

async function tsc(app: App): Promise<void> {
  await exec(process.execPath, [TSC, '-p', app.dir]);
}

/** Writes dist/<file>.js and its map beside it, as a build script would. */
function writeBuilt(app: App, code: string, map: unknown, file = 'jobs'): void {
  mkdirSync(join(app.dir, 'dist'), { recursive: true });
  writeFileSync(join(app.dir, 'dist', `${file}.js`), code);
  writeFileSync(join(app.dir, 'dist', `${file}.js.map`), typeof map === 'string' ? map : JSON.stringify(map));
}

/** The app's sources that SWC and Babel compile one by one. */
const FILES = ['jobs', 'compose'];

function swc(app: App, decorators: Decorators = 'legacy'): void {
  const core = require('@swc/core') as { transformFileSync(file: string, options: object): { code: string; map?: string } };
  for (const file of FILES) {
    const { code, map } = core.transformFileSync(join(app.dir, 'src', `${file}.ts`), {
      sourceMaps: true,
      outputPath: join(app.dir, 'dist', `${file}.js`),
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        target: 'es2022',
        transform: decorators === 'legacy' ? { legacyDecorator: true, decoratorMetadata: true } : { decoratorVersion: '2022-03' },
      },
      module: { type: 'commonjs' },
    });
    writeBuilt(app, code, map, file);
  }
}

function babel(app: App, version: 'legacy' | '2022-03' | '2023-01' | '2023-11'): void {
  const core = require('@babel/core') as { transformFileSync(file: string, options: object): { code: string; map: object } };
  for (const file of FILES) {
    const { code, map } = core.transformFileSync(join(app.dir, 'src', `${file}.ts`), {
      configFile: false,
      babelrc: false,
      sourceMaps: true,
      sourceFileName: `../src/${file}.ts`,
      plugins: [require.resolve('@babel/plugin-transform-typescript'), [require.resolve('@babel/plugin-proposal-decorators'), { version }]],
    });
    writeBuilt(app, code, map, file);
  }
}

const node = ['node', 'dist/jobs.js'];
const tsx = [join(BIN, 'tsx'), 'src/jobs.ts'];
const bun = [join(BIN, 'bun'), 'src/jobs.ts'];
const deno = [join(BIN, 'deno'), 'run', '-A', '--sloppy-imports', 'src/jobs.ts']; // sloppy: `./compose.js` is compose.ts, as under tsc

function launch(app: App, [command, ...args]: string[], mode: string, caller = 'jobs'): Started {
  return startCommand(command, [...args, mode, caller], {
    cwd: app.dir,
    env: { EXCLUSIVE_PROCESS_DIR: locks, NO_COLOR: '1' },
    stdin: mode === 'hold' ? 'pipe' : 'ignore',
  });
}

async function defaultName(app: App, command: string[]): Promise<unknown> {
  const { code, stdout, stderr } = await launch(app, command, 'name').finished;
  const line = stdout.split('\n').find((l) => l.startsWith('result '));
  if (code !== 0 || line === undefined) throw new Error(`exit ${code}: ${stdout}\n${stderr}`);
  return JSON.parse(line.slice('result '.length));
}

const toolchains: Array<
  [title: string, options: AppOptions, build: (app: App) => Promise<void> | void, command: string[], from: 'src' | 'dist']
> = [
  ['tsc, CommonJS, source maps', { type: 'commonjs', decorators: 'legacy', sourceMap: true }, tsc, node, 'src'],
  ['tsc, CommonJS, no source maps', { type: 'commonjs', decorators: 'legacy' }, tsc, node, 'dist'],
  ['tsc, ESM, source maps', { type: 'module', decorators: 'legacy', sourceMap: true }, tsc, node, 'src'],
  ['tsc, ESM, no source maps', { type: 'module', decorators: 'legacy' }, tsc, node, 'dist'],
  [
    'tsc with importHelpers (tslib), CommonJS, source maps',
    { type: 'commonjs', decorators: 'legacy', sourceMap: true, importHelpers: true },
    tsc,
    node,
    'src',
  ],
  ['tsc, CommonJS, source maps', { type: 'commonjs', decorators: 'standard', sourceMap: true }, tsc, node, 'src'],
  [
    'tsc with importHelpers (tslib), ESM, no source maps',
    { type: 'module', decorators: 'standard', importHelpers: true },
    tsc,
    node,
    'dist',
  ],
  ['tsx', { type: 'commonjs', decorators: 'legacy' }, () => {}, tsx, 'src'],
  ['tsx', { type: 'module', decorators: 'standard' }, () => {}, tsx, 'src'],
  ['SWC, CommonJS, source maps', { type: 'commonjs', decorators: 'legacy' }, swc, node, 'src'],
  ['Babel, ESM, source maps', { type: 'module', decorators: 'legacy' }, (app) => babel(app, 'legacy'), node, 'src'],
  ['SWC (2022-03), CommonJS, source maps', { type: 'commonjs', decorators: 'standard' }, (app) => swc(app, 'standard'), node, 'src'],
  [
    'Babel (2022-03: no context.metadata), ESM, source maps',
    { type: 'module', decorators: 'standard' },
    (app) => babel(app, '2022-03'),
    node,
    'src',
  ],
  [
    'Babel (2023-01: no context.metadata), ESM, source maps',
    { type: 'module', decorators: 'standard' },
    (app) => babel(app, '2023-01'),
    node,
    'src',
  ],
  ['Babel (2023-11), ESM, source maps', { type: 'module', decorators: 'standard' }, (app) => babel(app, '2023-11'), node, 'src'],
  ['Bun', { type: 'module', decorators: 'legacy' }, () => {}, bun, 'src'],
  ['Bun', { type: 'module', decorators: 'standard' }, () => {}, bun, 'src'],
  ['Deno', { type: 'module', decorators: 'legacy' }, () => {}, deno, 'src'],
  ['Deno', { type: 'module', decorators: 'standard' }, () => {}, deno, 'src'],
];

// One at a time: each compiles and starts a runtime, and the machine may be shared.
for (const [title, options, build, command, from] of toolchains) {
  test.serial(`${title}, ${options.decorators} decorators: the default name is <package>/${from}/jobs:Jobs.nightly`, async (t) => {
    const app = makeApp(options);
    await build(app);
    t.deepEqual(await defaultName(app, command), {
      decoratorArguments: options.decorators === 'legacy' ? 3 : 2, // proves the mode the toolchain compiled
      name: `${app.name}/${from}/jobs:Jobs.nightly`,
      // Wrapped by another decorator and first called from a subclass instance: still the declaring class's name.
      wrapped: `${app.name}/${from}/jobs:Base.work`,
      // A class decorator replaced Svc with a subclass: still Svc's name.
      subclassed: `${app.name}/${from}/jobs:Svc.go`,
      // Through helpers composing decorators (a package's, the app's own in another file): the class's file.
      composed: `${app.name}/${from}/jobs:Composed.run`,
      local: `${app.name}/${from}/jobs:Composed.local`,
      metadata: { name: `${app.name}/${from}/jobs:Base.work` }, // what @Exclusive() records on the prototype: the resolved name
    });
  });
}

/** Starts `holder` (it prints `held` inside the method), runs `other` once meanwhile, then lets the holder finish. */
async function contend(holder: [App, string[], string?], other: [App, string[], string?]): Promise<{ holder: string; other: string }> {
  const held = launch(holder[0], holder[1], 'hold', holder[2]);
  let tried: Finished;
  try {
    await held.waitFor('held\n', STARTUP_MS);
    tried = await launch(other[0], other[1], 'try', other[2]).finished;
  } finally {
    held.child.stdin!.end(); // lets the holder finish, also when the test failed
  }
  const finished = await held.finished;
  const last = (out: string): string => out.trim().split('\n').at(-1) ?? '';
  return { holder: `${finished.code}:${last(finished.stdout)}`, other: `${tried.code}:${last(tried.stdout)}${tried.stderr}` };
}

test('two unrelated packages compiled by tsc (experimentalDecorators) with the same class and method run at once', async (t) => {
  const a = makeApp({ type: 'commonjs', decorators: 'legacy' });
  const b = makeApp({ type: 'commonjs', decorators: 'legacy' });
  await Promise.all([tsc(a), tsc(b)]);
  t.deepEqual(await contend([a, node], [b, node]), { holder: '0:done', other: '0:done' });
});

test('two unrelated apps whose same-named class is decorated through a helper package that composes decorators run at once', async (t) => {
  const a = makeApp({ type: 'commonjs', decorators: 'legacy' });
  const b = makeApp({ type: 'commonjs', decorators: 'legacy' });
  await Promise.all([tsc(a), tsc(b)]);
  t.deepEqual(await contend([a, node, 'composed'], [b, node, 'composed']), { holder: '0:done', other: '0:done' });
});

test('tsx and the tsc-compiled build (with source maps) of one app share the lock', async (t) => {
  const app = makeApp({ type: 'commonjs', decorators: 'legacy', sourceMap: true });
  await tsc(app);
  t.deepEqual(await contend([app, tsx], [app, node]), { holder: '0:done', other: '0:ERR_LOCK_HELD' });
  t.deepEqual(await contend([app, node], [app, tsx]), { holder: '0:done', other: '0:ERR_LOCK_HELD' });
});

for (const [how, compilerOptions] of [
  ["built with a build machine's absolute sourceRoot", { sourceMap: true, sourceRoot: '/app/src' }],
  ['built with an inline source map', { inlineSourceMap: true }],
] as const) {
  test(`tsx and the tsc build ${how} share the lock; two unrelated packages built so do not`, async (t) => {
    const app = makeApp({ type: 'commonjs', decorators: 'legacy', compilerOptions });
    const other = makeApp({ type: 'commonjs', decorators: 'legacy', compilerOptions });
    await Promise.all([tsc(app), tsc(other)]);
    t.deepEqual(await contend([app, tsx], [app, node]), { holder: '0:done', other: '0:ERR_LOCK_HELD' });
    t.deepEqual(await contend([app, node], [other, node]), { holder: '0:done', other: '0:done' });
  });
}

for (const [title, options, build, command] of [
  ['tsx', { type: 'module', decorators: 'standard' }, () => {}, tsx],
  ['tsc', { type: 'commonjs', decorators: 'standard', sourceMap: true }, tsc, node],
  ['Babel (2022-03: no context.metadata)', { type: 'module', decorators: 'standard' }, (app: App) => babel(app, '2022-03'), node],
] as const) {
  test(`${title}, standard decorators: a method wrapped by another decorator takes the declaring class's lock from Base and Derived callers in two processes`, async (t) => {
    const app = makeApp(options);
    await build(app);
    t.deepEqual(await contend([app, [...command], 'base'], [app, [...command], 'derived']), { holder: '0:done', other: '0:ERR_LOCK_HELD' });
    t.deepEqual(await contend([app, [...command], 'derived'], [app, [...command], 'base']), { holder: '0:done', other: '0:ERR_LOCK_HELD' });
  });
}

test('Babel (2022-03: no context.metadata): a wrapped method overridden by a subclass is refused, never named after the calling class', async (t) => {
  const app = makeApp({ type: 'module', decorators: 'standard' });
  babel(app, '2022-03');
  const { stdout } = await launch(app, node, 'try', 'override').finished;
  t.is(stdout.trim(), 'ERR_INVALID_LOCK_NAME');
});

const downlevel = ['node', 'dist/downlevel.js'];

/** Runs dist/downlevel.js (see the fixture) and parses its result line. */
async function downlevelResult(app: App, args: string[]): Promise<unknown> {
  const { code, stdout, stderr } = await startCommand('node', ['dist/downlevel.js', ...args], {
    cwd: app.dir,
    env: { EXCLUSIVE_PROCESS_DIR: locks },
  }).finished;
  const line = stdout.split('\n').find((l) => l.startsWith('result '));
  if (code !== 0 || line === undefined) throw new Error(`exit ${code}: ${stdout}\n${stderr}`);
  return JSON.parse(line.slice('result '.length));
}

test('async compiled away (tsc target es2016): with async: true, concurrent calls of a function and a method wait their turn', async (t) => {
  const app = makeApp({ type: 'commonjs', decorators: 'legacy', sourceMap: true, target: 'es2016' });
  await tsc(app);
  t.deepEqual(await downlevelResult(app, ['same', 'async']), { function: ['done', 'done'], method: ['done', 'done'], maxRunning: 1 });
});

test("async compiled away, without async: true: the second concurrent call's error says why it failed and what to do", async (t) => {
  const app = makeApp({ type: 'commonjs', decorators: 'legacy', sourceMap: true, target: 'es2016' });
  await tsc(app);
  const explained = (name: string): string =>
    `ERR_LOCK_HELD '${name}' is held by this process: an earlier call of this function returned a promise that has not settled. ` +
    'A function not declared `async` is locked synchronously, so a second call cannot wait for it without blocking the thread that must settle it. ' +
    'If the function is asynchronous (its `async` compiled away by a TypeScript target of ES2016 or lower, or an older Babel or SWC target), pass `async: true` in its options.';
  t.deepEqual(await downlevelResult(app, ['same']), {
    function: ['done', explained(`${app.name}/src/downlevel`)],
    method: ['done', explained(`${app.name}/src/downlevel:Jobs.nightly`)],
    maxRunning: 1,
  });
});

test("async compiled away, without async: true nor wait: the second concurrent call's error says the holder is an earlier call and what to do", async (t) => {
  const app = makeApp({ type: 'commonjs', decorators: 'legacy', sourceMap: true, target: 'es2016' });
  await tsc(app);
  const explained = (name: string): string =>
    `ERR_LOCK_HELD '${name}' is held by this process: an earlier call of this function returned a promise that has not settled. ` +
    'If the function is asynchronous (its `async` compiled away by a TypeScript target of ES2016 or lower, or an older Babel or SWC target), pass `async: true` in its options.';
  t.deepEqual(await downlevelResult(app, ['same', 'nowait']), {
    function: ['done', explained(`${app.name}/src/downlevel`)],
    method: ['done', explained(`${app.name}/src/downlevel:Jobs.nightly`)],
    maxRunning: 1,
  });
});

test("async compiled away, with async: true: waiting for another process's holder does not block the event loop", async (t) => {
  const app = makeApp({ type: 'commonjs', decorators: 'legacy', sourceMap: true, target: 'es2016' });
  await tsc(app);
  const holder = launch(app, downlevel, 'hold', 'async');
  let waiter: Started | undefined;
  try {
    await holder.waitFor('held\n', STARTUP_MS);
    waiter = launch(app, downlevel, 'wait', 'async');
    await waiter.waitFor('waiting\n', STARTUP_MS);
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.is(waiter.child.exitCode, null, 'still waiting while the other process holds the lock');
  } finally {
    holder.child.stdin!.end();
  }
  const [held, waited] = await Promise.all([holder.finished, waiter.finished]);
  t.is(held.code, 0, held.stderr);
  t.is(waited.code, 0, waited.stderr);
  const { ticks } = JSON.parse(
    waited.stdout
      .split('\n')
      .find((l) => l.startsWith('result '))!
      .slice('result '.length)
  ) as { ticks: number };
  t.true(ticks > 0, `timers ran during the wait (${ticks} ticks)`);
});
