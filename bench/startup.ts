/**
 * The command-line tool's start-up: `exclusive NAME -- true` (the compiled
 * CLI, as the installed `exclusive` bin runs it) against `node -e 0`, Node's
 * own start, which is the floor. Runs alternate so that the machine's load
 * weighs on both alike.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { summarize, type Summary } from './stats.js';

/** Alternating runs of each command. */
export const STARTUP_RUNS = 20;

export interface StartupResult {
  readonly node: Summary;
  readonly exclusive: Summary;
}

const root = join(__dirname, '..');
/** Compiled apart from dist/ so the bench measures the sources as they are, without touching the build. */
const outDir = join(root, 'node_modules', '.cache', 'exclusive-bench-cli');

/** Compiles src/ the way `npm run build` does, into outDir; returns the CLI's path. */
export function buildCli(): string {
  const tsc = spawnSync(
    process.execPath,
    [join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', outDir],
    {
      cwd: root,
      encoding: 'utf8',
    }
  );
  if (tsc.status !== 0) throw new Error(`building the CLI failed:\n${tsc.stdout}${tsc.stderr}`);
  return join(outDir, 'cli.js');
}

/** Wall time of one run in nanoseconds; throws unless it exits 0. */
function timeRun(args: readonly string[]): number {
  const started = process.hrtime.bigint();
  const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const took = Number(process.hrtime.bigint() - started);
  if (run.status !== 0) throw new Error(`node ${args.join(' ')} exited ${run.status ?? run.signal}: ${run.stderr}`);
  return took;
}

/** Measures `node -e 0` and `node cli.js NAME --dir dir -- true`, alternating, after one warm-up run of each. */
export function measureStartup(cli: string, dir: string): StartupResult {
  const node = ['-e', '0'];
  const exclusive = [cli, '--dir', dir, `bench-startup-${process.pid}`, '--', 'true'];
  timeRun(node);
  timeRun(exclusive);
  const times = { node: [] as number[], exclusive: [] as number[] };
  for (let i = 0; i < STARTUP_RUNS; i++) {
    times.node.push(timeRun(node));
    times.exclusive.push(timeRun(exclusive));
  }
  return { node: summarize(times.node), exclusive: summarize(times.exclusive) };
}
