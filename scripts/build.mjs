// `npm run build` (and the tests' and the bench's private builds, with an
// output folder as argument, default dist): empties the folder, compiles the
// library with tsc (tsconfig.build.json: modules and declarations, one file
// per source), then bundles the `exclusive` command with esbuild. The command
// is one module because resolving and reading its forty modules one by one
// was the largest part of its start-up (docs/internals/cli-startup.md).
// Exits with tsc's status, after emitting as tsc does despite type errors.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = resolve(process.argv[2] ?? join(root, 'dist'));
rmSync(outdir, { recursive: true, force: true });

const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', outdir], { cwd: root, stdio: 'inherit' });

await build({
  absWorkingDir: root,
  entryPoints: {
    cli: 'src/cli.ts', // the bin: turns on the compile cache, then loads cli/main
    'cli/main': 'src/cli/main.ts',
    'cli/waiter': 'src/cli/waiter.ts', // the Windows driver's waiter thread, beside the bundle that starts it
  },
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external', // ffi-rs and pg load from node_modules, as the library's own modules load them
  keepNames: true, // error classes keep their names
  logLevel: 'warning',
  plugins: [
    {
      name: 'launcher',
      // The bin loads the bundle at run time, after turning on the compile cache.
      setup: (b) => b.onResolve({ filter: /^\.\/cli\/main\.js$/ }, () => ({ path: './cli/main.js', external: true })),
    },
  ],
});
process.exitCode = compiled.status ?? 1;
