// The README's recipes, run as a reader runs them. Each code block marked
// `<!-- recipe: <file> -->` is written to that file of a fresh project named
// `my-app` (which installs the package from its packed tarball, and tsx), and
// each `console` block marked `<!-- session: <name> -->` is replayed there:
// its `$ ` lines run in bash, and what they print must be the lines shown
// under them. So the tests fail when a recipe or its shown output drifts from
// what the code does.
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { packageCopy } from './helpers/package-copy.js';
import { ROOT } from './helpers/processes.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
/** The pid the README shows for a holder; the replay puts the real one in its place. */
const SHOWN_PID = '4242';

/** The code blocks marked `<!-- recipe: <file> -->`, by file. */
function recipes(): Map<string, string> {
  const found = new Map<string, string>();
  for (const [, file, code] of README.matchAll(/<!-- recipe: (\S+) -->\n```\w*\n([\s\S]*?)```/g)) found.set(file, code);
  return found;
}

interface Step {
  command: string;
  /** The lines shown under the command, each ending with a newline. */
  output: string;
}

/** The `$ ` commands of the console block marked `<!-- session: <name> -->`, each with the output shown under it. */
function session(name: string): Step[] {
  const block = new RegExp(`<!-- session: ${name} -->\\n\`\`\`console\\n([\\s\\S]*?)\`\`\``).exec(README)?.[1];
  if (block === undefined) throw new Error(`README.md has no session '${name}'`);
  const steps: Step[] = [];
  for (const line of block.split('\n').slice(0, -1)) {
    if (line.startsWith('$ ')) steps.push({ command: line.slice(2), output: '' });
    else steps.at(-1)!.output += `${line}\n`;
  }
  return steps;
}

let work = '';
let project = '';
let env: NodeJS.ProcessEnv = {};
const background = new Set<ChildProcess>();

function sh(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 180_000 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

test.before(() => {
  work = mkdtempSync(join(tmpdir(), 'exclusive-readme-'));
  const pkg = packageCopy(work); // packed (and so built) there, leaving the tree's dist/ alone
  const packed = JSON.parse(sh('npm', ['pack', '--json', '--pack-destination', work], pkg)) as Array<{ filename: string }>;
  const tarball = join(work, packed[0].filename);

  project = join(work, 'my-app');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), '{ "name": "my-app", "private": true, "type": "module" }\n');
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, 'tsx'], project);
  for (const [file, code] of recipes()) {
    if (file === 'crontab') continue;
    mkdirSync(dirname(join(project, file)), { recursive: true });
    writeFileSync(join(project, file), code);
  }
  const locks = join(work, 'locks');
  mkdirSync(locks);
  env = { ...process.env, PATH: `${join(project, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`, EXCLUSIVE_PROCESS_DIR: locks };
});

test.after.always(() => {
  for (const child of background) child.kill('SIGKILL');
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

/** The pid holding `name`, once it is held (asked of `exclusive status`). */
async function heldBy(name: string): Promise<number> {
  for (let tries = 0; tries < 600; tries += 1) {
    const status = spawnSync('exclusive', ['status', name, '--json'], { cwd: project, env, encoding: 'utf8' });
    if (status.status === 1) return (JSON.parse(status.stdout) as { pid: number }).pid;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`'${name}' was never held`);
}

/** Starts `command &`: resolves with what it printed once it has printed `shown` and holds `lock`. */
async function startInBackground(command: string, shown: string, lock: string): Promise<{ output: string; pid: number }> {
  const child = spawn('bash', ['-c', `exec ${command} 2>&1`], { cwd: project, env, stdio: ['ignore', 'pipe', 'inherit'] });
  background.add(child);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const pid = await heldBy(lock);
  for (let tries = 0; output.length < shown.length && tries < 200; tries += 1) await new Promise((resolve) => setTimeout(resolve, 50));
  return { output, pid };
}

/**
 * Replays a session and returns the transcript it printed, in the README's
 * form, with the holder's real pid replaced by the one shown.
 */
async function replay(name: string, lock: string): Promise<string> {
  let transcript = '';
  let exitCode = 0;
  let holder = 0;
  for (const { command, output } of session(name)) {
    transcript += `$ ${command}\n`;
    if (command.endsWith(' &')) {
      const started = await startInBackground(command.slice(0, -2), output, lock);
      holder = started.pid;
      transcript += started.output;
    } else if (command === 'echo $?') {
      transcript += `${exitCode}\n`;
    } else {
      const result = spawnSync('bash', ['-c', `exec 2>&1; ${command}`], { cwd: project, env, encoding: 'utf8', timeout: 60_000 });
      exitCode = result.status ?? -1;
      transcript += holder === 0 ? result.stdout : result.stdout.replaceAll(`(pid ${holder})`, `(pid ${SHOWN_PID})`);
    }
  }
  for (const child of background) {
    child.kill('SIGTERM');
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
    background.delete(child);
  }
  return transcript;
}

/** The console block of a session as the README shows it. */
function shown(name: string): string {
  return session(name)
    .map(({ command, output }) => `$ ${command}\n${output}`)
    .join('');
}

test.serial('the README has its three recipes and their sessions', (t) => {
  t.deepEqual([...recipes().keys()], ['scripts/backup.mjs', 'src/reports.ts', 'crontab']);
  for (const name of ['backup', 'reports', 'cli']) t.true(session(name).length > 0, name);
  t.true(existsSync(join(project, 'scripts', 'backup.mjs')));
});

test.serial('recipe 1: the cron script run twice at once: the second prints the shown line and exits 1', async (t) => {
  t.regex(recipes().get('scripts/backup.mjs')!, /Exclusive\.forever\(\{ die: true \}\)/);
  t.is(await replay('backup', 'my-app/scripts/backup'), shown('backup'));
});

test.serial('recipe 2: the decorated service method prints what the README shows', async (t) => {
  t.regex(recipes().get('src/reports.ts')!, /@Exclusive\(\)/);
  t.is(await replay('reports', 'my-app/src/reports:Reports.build'), shown('reports'));
});

test.serial('recipe 3: the crontab line, run while the lock is held, and by hand', async (t) => {
  const crontab = recipes().get('crontab')!.trim();
  // The crontab's command (after the five schedule fields, `exclusive` by its full path) is one the session runs.
  const [, path, args] = /^(?:\S+\s+){5}(\S+) (.*)$/.exec(crontab) ?? [];
  t.is(basename(String(path)), 'exclusive');
  t.true(
    session('cli').some(({ command }) => command === `exclusive ${String(args)}`),
    `the session runs the crontab's command: exclusive ${String(args)}`
  );
  t.is(await replay('cli', 'sync-mail'), shown('cli'));
});
