import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startArgv, type Finished, type Started } from './processes.js';
import { asUser } from './run-as.js';

const NSENTER = ['/usr/bin/nsenter', '/bin/nsenter'].find((file) => existsSync(file)) ?? 'nsenter';
const UNSHARE = ['/usr/bin/unshare', '/bin/unshare'].find((file) => existsSync(file)) ?? 'unshare';

/**
 * A private mount namespace (root only): `setup` (shell commands, such as
 * `mount -t tmpfs -o mode=0755 tmpfs /run/lock`) runs in it, and only the
 * processes started through it see those mounts. The rest of the machine
 * (other test runs using /run/lock) is untouched.
 */
export interface MountNamespace {
  /** Starts `argv` in the namespace, as `user` when given; `env` adds to the environment. */
  start(argv: readonly string[], options?: { user?: string; env?: NodeJS.ProcessEnv; stdin?: 'ignore' | 'pipe' }): Started;
  /** Runs `argv` in the namespace to its end. */
  run(argv: readonly string[], options?: { user?: string; env?: NodeJS.ProcessEnv }): Promise<Finished>;
  /** Ends the namespace's keeper process: the namespace goes with its last process. */
  close(): void;
}

/** Creates a private mount namespace and runs `setup` in it; rejects with its error output if setup fails. */
export function privateMounts(setup: string): Promise<MountNamespace> {
  const keeper = spawn(UNSHARE, ['--mount', '--propagation', 'private', 'sh', '-c', `${setup} && echo ready && exec sleep 100000`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    keeper.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    keeper.on('close', (code) => reject(new Error(`namespace setup failed (${code}): ${output}`)));
    keeper.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (!chunk.includes('ready')) return;
      const enter = (argv: readonly string[], user: string | undefined): string[] => {
        const inside = user === undefined ? [...argv] : asUser(user, argv).flat();
        return [NSENTER, '-t', String(keeper.pid), '-m', '--', ...inside];
      };
      const namespace: MountNamespace = {
        start: (argv, options = {}) => startArgv(enter(argv, options.user), { cwd: '/', env: options.env, stdin: options.stdin }),
        run: (argv, options = {}) => startArgv(enter(argv, options.user), { cwd: '/', env: options.env }).finished,
        close: () => keeper.kill('SIGKILL'),
      };
      resolve(namespace);
    });
  });
}
