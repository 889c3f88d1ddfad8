/**
 * The command-line tool's start-up: `exclusive NAME -- true` (the CLI built as
 * `npm run build` builds it, as the installed `exclusive` bin runs it) against
 * `node -e 0`, Node's own start, which is the floor the target is set
 * against, and two floors of our own that say where the rest goes: Node
 * running an empty file (what any bin pays over `-e`), and an empty file that
 * starts a shell guard and the command as the tool does (what the tool's
 * design pays before loading any of its code). Runs alternate so that the
 * machine's load weighs on all alike.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { summarize, type Summary } from './stats.js';

/** Alternating runs of each command. */
export const STARTUP_RUNS = 20;

export interface StartupResult {
  /** `node -e 0`. */
  readonly node: Summary;
  /** `node empty.js`. */
  readonly file: Summary;
  /** `node spawns.js`: an empty file that starts `sh` on a pipe and `true`, waits for `true`, closes the pipe. */
  readonly spawns: Summary;
  /** `node cli.js --dir DIR NAME -- true`. */
  readonly exclusive: Summary;
}

const root = join(__dirname, '..');
/** Built apart from dist/ so the bench measures the sources as they are, without touching the build. */
const outDir = join(root, 'node_modules', '.cache', 'exclusive-bench-cli');

/** Builds src/ as `npm run build` does (scripts/build.mjs), into outDir; returns the CLI's path. */
export function buildCli(): string {
  const build = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), outDir], { cwd: root, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`building the CLI failed:\n${build.stdout}${build.stderr}`);
  return join(outDir, 'cli.js');
}

const SPAWNS = `const { spawn } = require('node:child_process');
const guard = spawn('/bin/sh', ['-c', 'read x'], { stdio: ['pipe', 'ignore', 'ignore'] });
spawn('true', [], { stdio: 'inherit' }).on('exit', () => guard.stdin.end());
`;

/** Wall time of one run in nanoseconds; throws unless it exits 0. */
function timeRun(args: readonly string[]): number {
  const started = process.hrtime.bigint();
  const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const took = Number(process.hrtime.bigint() - started);
  if (run.status !== 0) throw new Error(`node ${args.join(' ')} exited ${run.status ?? run.signal}: ${run.stderr}`);
  return took;
}

/** Measures the four commands alternately, after one warm-up run of each. */
export function measureStartup(cli: string, dir: string): StartupResult {
  writeFileSync(join(dir, 'empty.js'), '');
  writeFileSync(join(dir, 'spawns.js'), SPAWNS);
  const commands = {
    node: ['-e', '0'],
    file: [join(dir, 'empty.js')],
    spawns: [join(dir, 'spawns.js')],
    exclusive: [cli, '--dir', dir, `bench-startup-${process.pid}`, '--', 'true'],
  };
  const keys = Object.keys(commands) as (keyof typeof commands)[];
  for (const key of keys) timeRun(commands[key]);
  const times = { node: [] as number[], file: [] as number[], spawns: [] as number[], exclusive: [] as number[] };
  for (let i = 0; i < STARTUP_RUNS; i++) for (const key of keys) times[key].push(timeRun(commands[key]));
  return {
    node: summarize(times.node),
    file: summarize(times.file),
    spawns: summarize(times.spawns),
    exclusive: summarize(times.exclusive),
  };
}
