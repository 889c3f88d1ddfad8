import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, untilListening } from './ports.js';

/**
 * A private, real redis-server (Debian's `redis-server` package) for one
 * test file or bench: a free loopback port, a temp directory, no
 * persistence. `restart()` stops it (SIGTERM) and starts it again on the
 * same port: every lock and counter is gone, as after a restart without
 * persistence. Stopped at exit in any case.
 */

export const REDIS_SERVER = process.env.EXCLUSIVE_REDIS_SERVER ?? '/usr/bin/redis-server';

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` (or with the password when one is set). */
  readonly url: string;
  /** Stops it, waits `downMs` (default 0), starts it again on the same port. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
  log(): string;
}

/** Throws with the fix when redis-server is missing. */
export function requireRedis(): void {
  if (!existsSync(REDIS_SERVER)) {
    throw new Error(
      `redis-server is not installed (${REDIS_SERVER}): run \`apt-get install -y redis-server\` (Debian/Ubuntu) to run the redis tests.`
    );
  }
}

/** Starts a server (well under a second); `password` sets `requirepass`. */
export async function startRedis(options: { password?: string } = {}): Promise<RedisServer> {
  requireRedis();
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-redis-'));
  const port = await freePort();
  const logFile = join(dir, 'server.log');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', logFile];
  if (options.password !== undefined) args.push('--requirepass', options.password);
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    child = spawn(REDIS_SERVER, args, { stdio: 'ignore', cwd: dir });
    await untilListening(port, child, () => `redis-server did not start on port ${port}`);
  };
  const halt = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  const stopAtExit = (): void => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopAtExit);
  await launch();
  const auth = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`;
  return {
    port,
    url: `redis://${auth}127.0.0.1:${port}`,
    async restart(downMs = 0) {
      await halt();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await launch();
    },
    async stop() {
      process.removeListener('exit', stopAtExit);
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
}
