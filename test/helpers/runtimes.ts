// The JavaScript runtime that runs the tests' child processes. ava runs on
// Node; with EXCLUSIVE_TEST_RUNTIME=bun or deno, the fixtures that the
// multi-process suites start (and the library they load) run in Bun or Deno
// instead, the binaries of the npm packages `bun` and `deno`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

export type Runtime = 'node' | 'bun' | 'deno';
export const RUNTIMES: readonly Runtime[] = ['node', 'bun', 'deno'];

const ROOT = join(__dirname, '..', '..');
/** The entry that checks its runtime, then runs a fixture (see runtime-entry.ts). */
const ENTRY = join(ROOT, 'test', 'fixtures', 'runtime-entry.ts');

/** The runtime chosen by EXCLUSIVE_TEST_RUNTIME (default: node). */
export function testRuntime(): Runtime {
  const chosen = process.env.EXCLUSIVE_TEST_RUNTIME || 'node';
  if (!(RUNTIMES as readonly string[]).includes(chosen)) throw new Error(`EXCLUSIVE_TEST_RUNTIME=${chosen}: expected node, bun or deno`);
  return chosen as Runtime;
}

/**
 * The runtime's own binary (not a wrapper script: the pid a test signals must
 * be the runtime's). The packages' postinstall scripts move or link the
 * binary of the platform's package into place; where npm did not run them,
 * that package still has it.
 */
export function runtimeBinary(runtime: Runtime): string {
  if (runtime === 'node') return process.execPath;
  const modules = join(ROOT, 'node_modules');
  const candidates =
    runtime === 'bun'
      ? [join(modules, 'bun', 'bin', 'bun.exe'), join(modules, '@oven', `bun-linux-${process.arch}`, 'bin', 'bun')]
      : [join(modules, 'deno', 'deno'), join(modules, '@deno', `linux-${process.arch}-glibc`, 'deno')];
  const binary = candidates.find(isExecutable);
  if (binary === undefined) throw new Error(`no ${runtime} binary in ${candidates.join(' or ')}: run npm install`);
  return binary;
}

/** An ELF executable (not a placeholder or a Node script standing in for one). */
function isExecutable(path: string): boolean {
  try {
    const head = Buffer.alloc(4);
    const fd = openSync(path, 'r');
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    return head.toString('latin1') === '\x7fELF';
  } catch {
    return false;
  }
}

/** Environment every child of `runtime` gets: the runtime it must find itself in, and no update checks (they print to stderr). */
export function runtimeEnv(runtime: Runtime): NodeJS.ProcessEnv {
  return { EXCLUSIVE_TEST_RUNTIME: runtime, DENO_NO_UPDATE_CHECK: '1', DENO_NO_PROMPT: '1' };
}

/**
 * The command line that runs the TypeScript file `file` (of this repository)
 * with `args` in `runtime`. Node runs it through tsx; Bun runs the sources
 * itself; Deno, which runs `.ts` files only as ES modules (the library is
 * CommonJS, as its package is), runs them compiled by tsc (see denoBuild).
 * In Bun and Deno, runtime-entry checks the runtime before the fixture runs.
 */
export function runtimeArgv(runtime: Runtime, file: string, args: readonly string[]): string[] {
  switch (runtime) {
    case 'node':
      return [process.execPath, '--import', 'tsx', file, ...args];
    case 'bun':
      return [runtimeBinary('bun'), ENTRY, file, ...args];
    case 'deno': {
      const build = denoBuild();
      const compiled = (ts: string): string => join(build, relative(ROOT, ts).replace(/\.ts$/, '.js'));
      if (!existsSync(compiled(file))) throw new Error(`${file} is not in the Deno build (src/ and test/fixtures/*.ts are)`);
      return [runtimeBinary('deno'), 'run', '--allow-all', compiled(ENTRY), compiled(file), ...args];
    }
  }
}

/** The command line that runs the JavaScript file `file` (a built package's, CommonJS) with `args` in `runtime`. */
export function scriptArgv(runtime: Runtime, file: string, args: readonly string[]): string[] {
  if (runtime === 'deno') return [runtimeBinary('deno'), 'run', '--allow-all', file, ...args];
  return [runtimeBinary(runtime), file, ...args];
}

let built: string | undefined;

/**
 * src/ and test/fixtures/*.ts compiled to CommonJS by tsc, with the
 * repository's package.json and node_modules, in a directory of the system's
 * temporary folder named after a hash of the inputs: built once, shared by
 * every test process (each builds in a folder of its own, then renames it into
 * place; the first rename wins).
 */
export function denoBuild(): string {
  if (built !== undefined) return built;
  const inputs = buildInputs();
  const hash = createHash('sha256');
  for (const file of inputs) hash.update(file).update(readFileSync(join(ROOT, file)));
  const target = join(tmpdir(), `exclusive-deno-build-${hash.digest('hex').slice(0, 16)}`);
  if (!existsSync(join(target, 'package.json'))) compileInto(target);
  return (built = target);
}

function buildInputs(): string[] {
  const fixtures = readdirSync(join(ROOT, 'test', 'fixtures')).filter((file) => file.endsWith('.ts'));
  const sources = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((file) => /\.m?ts$/.test(file));
  return [
    'package.json',
    'tsconfig.json',
    ...sources.sort().map((file) => join('src', file)),
    ...fixtures.sort().map((file) => join('test', 'fixtures', file)),
  ];
}

function compileInto(target: string): void {
  const work = mkdtempSync(`${target}-`);
  writeFileSync(
    join(work, 'tsconfig.json'),
    JSON.stringify({
      extends: join(ROOT, 'tsconfig.json'),
      compilerOptions: { noEmit: false, rootDir: ROOT, outDir: work, paths: {}, typeRoots: [join(ROOT, 'node_modules', '@types')] },
      include: [join(ROOT, 'src'), join(ROOT, 'test', 'fixtures', '*.ts')],
    })
  );
  // tsc emits despite type errors (a file mid-edit elsewhere must not stop the run); a missing output is caught by runtimeArgv.
  spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(work, 'tsconfig.json')], {
    encoding: 'utf8',
  });
  cpSync(join(ROOT, 'package.json'), join(work, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
  try {
    renameSync(work, target);
  } catch {
    rmSync(work, { recursive: true, force: true }); // another test process built it first
  }
}
