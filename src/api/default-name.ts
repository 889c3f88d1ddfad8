import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '../shared/errors.js';

/**
 * Default lock names, from the file of the code that asked for the lock: the
 * first stack frame outside this package and the decorator helpers, followed
 * through its source map, canonical path without extension, relative to its
 * package (`my-app/scripts/backup`); decorators append `:Class.method`.
 * The full rule, as users rely on it: docs/guarantees.md#default-names.
 */

/** This library's own code (src/ under tsx, dist/ once built; this file is in its api/): its frames are never the caller. */
const OWN_DIR = join(__dirname, '..');
/** Packages whose code calls decorators on behalf of the class's file: decorator helpers and `Reflect.decorate` providers. */
const DECORATOR_HELPERS = new Set([
  'tslib',
  '@swc/helpers',
  '@babel/runtime',
  '@babel/runtime-corejs2',
  '@babel/runtime-corejs3',
  'reflect-metadata',
  '@abraham/reflection',
]);
const SOURCE_EXT = /\.(?:[cm]?[jt]sx?)$/;

/** The name for code in the file of the first foreign stack frame. */
export function nameFromCaller(): string {
  return nameForFile(callerFile());
}

/**
 * The file of the first stack frame outside this package (and decorator
 * helpers). `decorating`: called by a decorator, whose class's file is the
 * first such frame below the compiler's code that applies decorators (when
 * found), so that helpers composing decorators in between (NestJS's
 * `applyDecorators`, an app's own `Job()`) do not name it.
 */
export function callerFile(decorating = false): string {
  const sites = stackSites();
  for (const site of (decorating && belowDecoratorRunner(sites)) || sites) {
    const raw = site.getFileName();
    if (!raw || raw.startsWith('node:') || raw.startsWith('internal/')) continue;
    const file = raw.startsWith('file://') ? fileURLToPath(raw) : raw;
    // Code without a file (node -e, stdin, the REPL; ESM names it as if in the
    // working directory): argv[1] or the working directory would give unrelated
    // snippets one name, or a real script's.
    if (NO_FILE.test(basename(file))) {
      throw new InvalidArgumentError(
        'ERR_INVALID_LOCK_NAME',
        'No default lock name for code that has no file (node -e, stdin, the REPL): pass options.name.'
      );
    }
    if (!isAbsolute(file)) continue;
    if (isInside(file, OWN_DIR) || isDecoratorHelper(file)) continue;
    return file;
  }
  // Every frame is ours: this package was bundled into the application (esbuild,
  // webpack), so the bundle, the main script, names everything in it.
  return resolve(process.argv[1] ?? 'main');
}

/** The call stack of callerFile's caller. */
function stackSites(): NodeJS.CallSite[] {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- saved and put back as it was, never called
  const original = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  try {
    Error.stackTraceLimit = 50;
    Error.prepareStackTrace = (_error, callSites) => callSites;
    const holder: { stack?: unknown } = {};
    Error.captureStackTrace(holder, callerFile);
    return holder.stack as NodeJS.CallSite[];
  } finally {
    Error.prepareStackTrace = original;
    Error.stackTraceLimit = limit;
  }
}

/**
 * Functions of compilers' decorator helpers that call decorators (as their
 * frames name them): tsc's `__decorate` and `__esDecorate` (inline or tslib),
 * SWC's and Deno's `_ts_decorate` and `_apply_decs_2203_r`, Babel's
 * `_applyDecoratedDescriptor` and `_applyDecs*` with their inner functions,
 * esbuild's (tsx) `__decorateClass` and `__decorateElement`.
 */
const DECORATOR_RUNNER =
  /^(?:__decorate|__esDecorate|_ts_decorate|__decorateClass|__decorateElement|_applyDecoratedDescriptor|_?applyDecs\w*|_apply_decs\w*|applyMemberDecs?|applyDec|memberDec)$/;

function isDecoratorRunner(site: NodeJS.CallSite): boolean {
  // Bun's own decorator helpers live in `bun:wrap` (with minified names).
  return site.getFileName() === 'bun:wrap' || DECORATOR_RUNNER.test(site.getFunctionName() ?? '');
}

/** The frames below the first run of decorator-runner frames, or undefined when there is none. */
function belowDecoratorRunner(sites: NodeJS.CallSite[]): NodeJS.CallSite[] | undefined {
  let i = sites.findIndex(isDecoratorRunner);
  if (i < 0) return undefined;
  while (i < sites.length && isDecoratorRunner(sites[i])) i++;
  return sites.slice(i);
}

/** Whether `file` belongs to a package in DECORATOR_HELPERS (its nearest named package.json says so). */
function isDecoratorHelper(file: string): boolean {
  return DECORATOR_HELPERS.has(nearestPackage(dirname(file))?.name ?? '');
}

/** What Node reports as the file of code run by `node -e` (`[eval]`, `[eval1]`), from stdin (`[stdin]`) or in the REPL. */
const NO_FILE = /^(?:\[(?:eval|stdin)\d*\]|REPL\d+)$/;

const cache = new Map<string, string>();

/** The default lock name for code in `file` (see the rule above). */
export function nameForFile(file: string): string {
  let name = cache.get(file);
  if (name === undefined) {
    const source = onDisk(sourceOf(onDisk(file)));
    const stem = source.replace(SOURCE_EXT, '');
    const pkg = nearestPackage(dirname(source));
    name = pkg ? `${pkg.name}/${relative(pkg.dir, stem).split(sep).join('/')}` : stem.split(sep).join('/');
    cache.set(file, name);
  }
  return name;
}

/**
 * The file's canonical path as the file system spells it: where file names
 * ignore case (Windows, macOS by default), `C:\Jobs\Nightly.mjs` and
 * `c:\jobs\nightly.mjs` are one file, and Node reports whichever spelling
 * started it. A file that is not there (a bundler's virtual path) keeps its path.
 */
function onDisk(file: string): string {
  try {
    return realpathSync.native(file);
  } catch {
    return file;
  }
}

/**
 * The one source a compiled file's source map (a `.map` beside it, or an
 * inline `data:` map on its last line) names, if it stays in the compiled
 * file's package: a build machine's absolute path (`--sourceRoot /app/src`,
 * `file:///app/src/jobs.ts`) is re-rooted in that package where the same
 * relative path exists there, else the compiled file keeps its own name (a
 * mapped source must never give two packages one name).
 */
function sourceOf(file: string): string {
  if (!/\.[cm]?js$/.test(file)) return file;
  const map = readSourceMap(file);
  if (!Array.isArray(map?.sources) || map.sources.length !== 1 || typeof map.sources[0] !== 'string') return file;
  const root = typeof map.sourceRoot === 'string' ? map.sourceRoot.replace(/^file:\/\//, '') : '';
  const source = map.sources[0].startsWith('file://') ? fileURLToPath(map.sources[0]) : resolve(dirname(file), root, map.sources[0]);
  if (!extname(source)) return file;
  const pkg = nearestPackage(dirname(file));
  if (pkg === undefined || isInside(source, pkg.dir)) return source;
  return reRooted(source, pkg.dir) ?? file;
}

const INLINE_MAP = /^\/\/[#@] sourceMappingURL=data:application\/json(?:;charset=[\w-]+)?;base64,([A-Za-z0-9+/=]+)\s*$/;

/** The parsed source map of `file`, or undefined: none, or unreadable (no reason to fail: the compiled path is still a stable name). */
function readSourceMap(file: string): { sources?: unknown; sourceRoot?: unknown } | undefined {
  try {
    if (existsSync(`${file}.map`)) return JSON.parse(readFileSync(`${file}.map`, 'utf8')) as { sources?: unknown; sourceRoot?: unknown };
    const text = readFileSync(file, 'utf8');
    const inline = INLINE_MAP.exec(text.slice(text.trimEnd().lastIndexOf('\n') + 1));
    return inline
      ? (JSON.parse(Buffer.from(inline[1], 'base64').toString('utf8')) as { sources?: unknown; sourceRoot?: unknown })
      : undefined;
  } catch {
    return undefined;
  }
}

/** The file in `dir` at the longest tail of `source`'s path (`/app/src/jobs.ts` → `<dir>/src/jobs.ts`) that exists. */
function reRooted(source: string, dir: string): string | undefined {
  const parts = source.split(/[\\/]/).filter((part) => part !== '');
  for (let i = 0; i < parts.length; i++) {
    const candidate = join(dir, ...parts.slice(i));
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

const packages = new Map<string, { name: string; dir: string } | undefined>();

/** The nearest `package.json` with a `name` at or above `start` (cached per directory: stack walks ask often). */
function nearestPackage(start: string): { name: string; dir: string } | undefined {
  if (!packages.has(start)) packages.set(start, findPackage(start));
  return packages.get(start);
}

function findPackage(start: string): { name: string; dir: string } | undefined {
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        const { name } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
        if (typeof name === 'string' && name.length > 0) return { name, dir };
      } catch {
        // A broken package.json does not name a package; keep looking upwards.
      }
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function isInside(file: string, dir: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}
