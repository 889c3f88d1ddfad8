import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cpSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nameForFile } from '../src/api/default-name.js';
import { Exclusive, exclusive } from '../src/index.js';
import { ROOT } from './helpers/processes.js';

const project = (pkg: object | undefined): string => {
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-names-'));
  if (pkg) writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg));
  return dir;
};

test('the default name is the package name plus the path of the file without its extension', (t) => {
  t.is(nameForFile(join(ROOT, 'test', 'names.test.ts')), 'exclusive-process/test/names.test');
  t.is(nameForFile(join(ROOT, 'examples', 'nightly-job.ts')), 'exclusive-process/examples/nightly-job');
});

test('a compiled file with a source map gets the name of its TypeScript source, as under tsx', (t) => {
  const dir = project({ name: 'my-app' });
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'job.ts'), 'export const job = 1;\n');
  execFileSync(process.execPath, [
    join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '--ignoreConfig',
    '--sourceMap',
    '--outDir',
    join(dir, 'dist'),
    '--rootDir',
    join(dir, 'src'),
    join(dir, 'src', 'job.ts'),
  ]);
  t.is(nameForFile(join(dir, 'src', 'job.ts')), 'my-app/src/job');
  t.is(nameForFile(join(dir, 'dist', 'job.js')), 'my-app/src/job');
  // Without a map, the compiled path is the name (stable, just different).
  writeFileSync(join(dir, 'dist', 'other.js'), '');
  t.is(nameForFile(join(dir, 'dist', 'other.js')), 'my-app/dist/other');
});

test("unrelated projects' index files do not collide; a package.json without a name is passed over", (t) => {
  const a = project({ name: 'service-a' });
  const b = project({ name: 'service-b' });
  t.is(nameForFile(join(a, 'index.ts')), 'service-a/index');
  t.is(nameForFile(join(b, 'index.ts')), 'service-b/index');
  const nested = join(a, 'packages', 'tool');
  mkdirSync(nested, { recursive: true });
  writeFileSync(join(nested, 'package.json'), JSON.stringify({ type: 'module' }));
  t.is(nameForFile(join(nested, 'index.mjs')), 'service-a/packages/tool/index');
});

test('without any named package.json the absolute path without extension is the name', (t) => {
  const dir = project(undefined);
  t.is(nameForFile(join(dir, 'script.cjs')), `${dir}/script`);
});

test('exclusive(fn) takes its default name from the file that called it', async (t) => {
  const job = exclusive(async () => (await import('../src/index.js')).Exclusive.holder('exclusive-process/test/names.test')?.pid);
  t.is(await job(), process.pid);
});

test('code without a file (node -e) gets no default name: a clear error asks for one, instead of a name shared by every snippet', (t) => {
  const snippet = (options: string): string =>
    `const { Exclusive } = require('./src/index.ts'); try { console.log(Exclusive.forever(${options}).name); } catch (e) { console.log(e.code, e.message); }`;
  const run = (options: string): string =>
    execFileSync(process.execPath, ['--import', 'tsx', '-e', snippet(options), 'backup'], { cwd: ROOT, encoding: 'utf8' }).trim();
  t.is(run(''), 'ERR_INVALID_LOCK_NAME No default lock name for code that has no file (node -e, stdin, the REPL): pass options.name.');
  const esm = `import { Exclusive } from './src/index.mts'; try { Exclusive.forever(); } catch (e) { console.log(e.code); }`;
  t.is(
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', esm], { cwd: ROOT, encoding: 'utf8' }).trim(),
    'ERR_INVALID_LOCK_NAME',
    'ESM -e too'
  );
  t.is(run(`{ name: 'snippet', dir: ${JSON.stringify(mkdtempSync(join(tmpdir(), 'exclusive-eval-')))} }`), 'snippet');
});

test("Reflect.decorate is passed over wherever reflect-metadata is installed, also outside node_modules (Bun's and Deno's caches)", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-reflect-'));
  const cache = join(dir, 'registry.npmjs.org', 'reflect-metadata', '0.2.2');
  cpSync(join(ROOT, 'node_modules', 'reflect-metadata'), cache, { recursive: true });
  require(join(cache, 'Reflect.js')); // the last copy loaded provides the global Reflect.decorate
  let stack = '';
  const probe = (): void => {
    stack = new Error().stack ?? '';
  };
  class Jobs {
    run(): number | null | undefined {
      return Exclusive.holder('exclusive-process/test/names.test:Jobs.run', { dir })?.pid;
    }
  }
  // What tsc's __decorate does with experimentalDecorators (decorators apply last to first).
  const decorated = Reflect.decorate(
    [Exclusive({ dir }), probe],
    Jobs.prototype,
    'run',
    Object.getOwnPropertyDescriptor(Jobs.prototype, 'run')
  );
  Object.defineProperty(Jobs.prototype, 'run', decorated);
  t.true(stack.includes(cache), 'the decorators were called by the copy in the cache');
  t.is(new Jobs().run(), process.pid);
});

test('a symbolic link to a script shares its name; a hard link is another path with a name of its own (as documented)', (t) => {
  const dir = project({ name: 'linked-app' });
  writeFileSync(join(dir, 'job.mjs'), '');
  symlinkSync(join(dir, 'job.mjs'), join(dir, 'symlinked.mjs'));
  linkSync(join(dir, 'job.mjs'), join(dir, 'hardlinked.mjs'));
  t.is(nameForFile(join(dir, 'symlinked.mjs')), 'linked-app/job');
  t.is(nameForFile(join(dir, 'hardlinked.mjs')), 'linked-app/hardlinked');
});

/** Compiles `<dir>/src/job.ts` with tsc and `flags` into `<dir>/dist`. */
function compileJob(dir: string, ...flags: string[]): void {
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'src', 'job.ts'), 'export const job = 1;\n');
  execFileSync(process.execPath, [
    join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '--ignoreConfig',
    ...flags,
    '--outDir',
    join(dir, 'dist'),
    '--rootDir',
    join(dir, 'src'),
    join(dir, 'src', 'job.ts'),
  ]);
}

test("a source map naming a build machine's absolute path (sourceRoot, file:// URL) is re-rooted in the compiled file's package", (t) => {
  const dir = project({ name: 'built-elsewhere' });
  compileJob(dir, '--sourceMap', '--sourceRoot', '/app/src');
  t.is(nameForFile(join(dir, 'dist', 'job.js')), 'built-elsewhere/src/job');
  const other = project({ name: 'built-elsewhere-url' });
  compileJob(other, '--sourceMap');
  writeFileSync(join(other, 'dist', 'job.js.map'), JSON.stringify({ version: 3, sources: ['file:///app/src/job.ts'], mappings: '' }));
  t.is(nameForFile(join(other, 'dist', 'job.js')), 'built-elsewhere-url/src/job');
});

test('two packages built with one absolute sourceRoot and shipped without sources keep names of their own', (t) => {
  const names = ['lib-a', 'lib-b'].map((name) => {
    const dir = project({ name });
    compileJob(dir, '--sourceMap', '--sourceRoot', '/app/src');
    rmSync(join(dir, 'src'), { recursive: true });
    return nameForFile(join(dir, 'dist', 'job.js'));
  });
  t.deepEqual(names, ['lib-a/dist/job', 'lib-b/dist/job']);
});

test('an inline source map (--inlineSourceMap) leads to the TypeScript source like a .map file', (t) => {
  const dir = project({ name: 'inline-app' });
  compileJob(dir, '--inlineSourceMap');
  t.is(nameForFile(join(dir, 'dist', 'job.js')), 'inline-app/src/job');
});
