import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runtimeArgv, runtimeEnv, testRuntime, type Runtime } from './runtimes.js';

/** Root of the repository. */
export const ROOT = resolve(__dirname, '..', '..');
/** Fixture scripts run as real child processes. */
export const FIXTURES = join(ROOT, 'test', 'fixtures');

/** A fresh, private lock directory for one test. */
export function lockDir(): string {
  return mkdtempSync(join(tmpdir(), 'exclusive-test-'));
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Started {
  child: ChildProcess;
  /** Resolves with all stdout so far once it contains `text`. */
  waitFor(text: string, timeoutMs?: number): Promise<string>;
  /** Resolves when the process has ended. */
  finished: Promise<Finished>;
}

/**
 * Starts a TypeScript file (a fixture by default) in a real process of the
 * runtime that EXCLUSIVE_TEST_RUNTIME chooses: Node (through tsx like the
 * tests themselves, the default), Bun or Deno.
 */
export function start(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, stdin: 'ignore' | 'pipe' = 'ignore'): Started {
  return startIn(testRuntime(), script, args, env, stdin);
}

/** Starts a TypeScript file (a fixture by default) in a real process of `runtime`, watched like {@link start}. */
export function startIn(
  runtime: Runtime,
  script: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
  stdin: 'ignore' | 'pipe' = 'ignore'
): Started {
  const file = script.includes('/') ? script : join(FIXTURES, script);
  const [command, ...argv] = runtimeArgv(runtime, file, args);
  return startCommand(command, argv, { cwd: ROOT, env: { ...runtimeEnv(runtime), ...env }, stdin });
}

/** Starts the command `argv` (program first), watched like {@link start}. */
export function startArgv(argv: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv; stdin?: 'ignore' | 'pipe' }): Started {
  return startCommand(argv[0], argv.slice(1), options);
}

/** Starts any command (node, bun, deno...) in `cwd`, watched like {@link start}. */
export function startCommand(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; stdin?: 'ignore' | 'pipe' }
): Started {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const listener of listeners) listener();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const finished = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => {
      for (const listener of listeners) listener();
      resolve({ code, signal, stdout, stderr });
    });
  });
  const waitFor = (text: string, timeoutMs = 20_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (stdout.includes(text)) {
          cleanup();
          resolve(stdout);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          cleanup();
          reject(new Error(`process ended before printing ${JSON.stringify(text)}; stdout: ${stdout} stderr: ${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${JSON.stringify(text)}; stdout: ${stdout} stderr: ${stderr}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  return { child, waitFor, finished };
}

/** Runs a script to completion. */
export function run(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  return start(script, args, env).finished;
}

/** Linux: whether the process has a handler for signal number `signal` (SigCgt in /proc/PID/status). */
export function catchesSignal(pid: number, signal: number): boolean {
  const caught = BigInt(`0x${/SigCgt:\s*([0-9a-f]+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
  return (caught & (1n << BigInt(signal - 1))) !== 0n;
}

/** A lock as `exclusive status --json` lists it, cut to what the tests compare. */
export interface ListedLock {
  name: string;
  state: string;
  pid: number | null;
}

/** The name, state and pid of each lock in the output of `exclusive status --json`. */
export function listedLocks(stdout: string): ListedLock[] {
  return (JSON.parse(stdout) as ListedLock[]).map(({ name, state, pid }) => ({ name, state, pid }));
}

/** The files a process has open (Linux: its /proc fd links). */
export function openFiles(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/${pid}/fd/${fd}`)];
    } catch {
      return []; // closed meanwhile
    }
  });
}
