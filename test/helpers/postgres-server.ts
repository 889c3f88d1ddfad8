import { execFile, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asUser } from './run-as.js';
import { freePort, untilListening } from './ports.js';

export { freePort } from './ports.js';

/**
 * A private, real PostgreSQL 15 cluster for one test run (or bench): a copy of one initdb per process
 * in a fresh temp directory, a free loopback port, its own socket
 * directory; stopped and deleted by `stop()`. PostgreSQL refuses to run as
 * root, so as root every server command runs as the `postgres` user
 * (`runuser -u postgres --`).
 */

export const PG_BIN = process.env.EXCLUSIVE_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly connectionString: string;
  readonly dataDir: string;
  /** Stops (fast: sessions are terminated) and starts the server again on the same port. */
  restart(): Promise<void>;
  /**
   * Crashes the server (`pg_ctl stop -m immediate`: every server process is
   * SIGQUIT-killed, nothing is flushed or checkpointed) and starts it again,
   * which replays its WAL (crash recovery) as after a power cut of the server.
   */
  crashAndRestart(): Promise<void>;
  /** Stops the server and deletes its files. Idempotent. */
  stop(): Promise<void>;
  /** The server log so far. */
  log(): string;
}

export function postgresInstalled(): boolean {
  return existsSync(join(PG_BIN, 'initdb'));
}

/** Throws with the fix when the PostgreSQL 15 binaries are missing. */
export function requirePostgres(): void {
  if (!postgresInstalled()) {
    throw new Error(
      `PostgreSQL 15 is not installed (${join(PG_BIN, 'initdb')} is missing): run \`apt-get install -y postgresql-15\` (Debian/Ubuntu) to run the postgres tests.`
    );
  }
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Root runs the server's programs as the postgres user (initdb refuses root). */
const asPostgres = ([file, ...args]: string[]): [string, string[]] => (asRoot ? asUser('postgres', [file, ...args]) : [file, args]);

/**
 * The postgres user's working directory: not the checkout, which it may not
 * enter (a clone in a 0700 folder): initdb's post-bootstrap step then fails.
 */
const POSTGRES_CWD = '/';

function runPg(tool: string, args: string[]): Promise<string> {
  const file = join(PG_BIN, tool);
  const [command, argv] = asPostgres([file, ...args]);
  return new Promise((resolve, reject) => {
    execFile(command, argv, { timeout: 60_000, cwd: POSTGRES_CWD }, (error, stdout, stderr) => {
      const killed = error?.killed === true ? ` (killed by ${error.signal} after the 60 s timeout)` : '';
      if (error) reject(new Error(`${tool} ${args.join(' ')} failed${killed}: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * Creates and starts a private cluster (about 1 s). `fsync: false` (the
 * default, for tests) skips disk flushes; the bench turns it on to show the
 * cost of a durable commit. `settings`: more server configuration
 * (`-c name=value`), e.g. `{ synchronous_commit: 'off' }`.
 */
export async function startPostgres(
  options: { fsync?: boolean; settings?: Readonly<Record<string, string>> } = {}
): Promise<PostgresServer> {
  requirePostgres();
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-pg-'));
  if (asRoot) {
    const { uid, gid } = postgresIds();
    chownSync(dir, uid, gid);
  }
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  await copyCluster(await template(), dataDir);
  const port = await freePort();
  const extra = Object.entries(options.settings ?? {})
    .map(([name, value]) => ` -c ${name}=${value}`)
    .join('');
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=${options.fsync ? 'on' : 'off'} -c max_connections=200${extra}`;
  const start = (): Promise<string> => runPg('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOptions, '-w', '-t', '30', 'start']);
  let stopped = false;
  // A run that crashes or exits early must not leave a server behind.
  const stopAtExit = (): void => {
    if (stopped) return;
    stopped = true;
    try {
      const file = join(PG_BIN, 'pg_ctl');
      const args = ['-D', dataDir, '-m', 'immediate', '-w', 'stop'];
      const [command, argv] = asPostgres([file, ...args]);
      execFileSync(command, argv, { stdio: 'ignore' });
    } catch {
      // Not running.
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopAtExit);
  await start();
  return {
    host: '127.0.0.1',
    port,
    connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    async restart() {
      await runPg('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '30', 'stop']);
      await start();
    },
    async crashAndRestart() {
      await runPg('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop']);
      await start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener('exit', stopAtExit);
      try {
        await runPg('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop']);
      } catch {
        // Not running (a failed start): nothing to stop.
      }
      rmSync(dir, { recursive: true, force: true });
    },
    log() {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
}

let templateDir: Promise<string> | undefined;

/**
 * One initdb per test process: every server starts from a copy of it.
 * initdb takes seconds of CPU, and a test file that starts a server per
 * test (the CLI's) ran several at once and hit initdb's timeout on a loaded
 * machine. Removed at exit. A file whose tests start servers at once calls
 * it in its before hook, while the machine is still quiet.
 */
export function template(): Promise<string> {
  templateDir ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'exclusive-pg-template-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    if (asRoot) {
      const { uid, gid } = postgresIds();
      chownSync(dir, uid, gid);
    }
    const dataDir = join(dir, 'data');
    await runPg('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-locale', '-E', 'UTF8']);
    return dataDir;
  })();
  return templateDir;
}

/** Copies a stopped cluster's data directory, owners and modes kept (PostgreSQL wants its files its own, mode 0700). */
function copyCluster(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('cp', ['-a', from, to], { cwd: POSTGRES_CWD }, (error) =>
      error === null ? resolve() : reject(new Error(`cp -a ${from} ${to} failed: ${error.message}`))
    );
  });
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (line === undefined) throw new Error('There is no `postgres` user: run `apt-get install -y postgresql-15`, which creates it.');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export const PGBOUNCER = process.env.EXCLUSIVE_PGBOUNCER ?? '/usr/sbin/pgbouncer';

export interface PgBouncer {
  readonly connectionString: string;
  stop(): Promise<void>;
}

/**
 * A real PgBouncer (Debian package `pgbouncer`) in front of `server`, in the
 * given pool mode, on a free port; `stop()` ends it and deletes its files.
 */
export async function startPgBouncer(server: PostgresServer, poolMode: 'session' | 'transaction'): Promise<PgBouncer> {
  if (!existsSync(PGBOUNCER)) throw new Error(`PgBouncer is not installed (${PGBOUNCER}): run \`apt-get install -y pgbouncer\`.`);
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-pgbouncer-'));
  const port = await freePort();
  writeFileSync(join(dir, 'users.txt'), '"postgres" ""\n');
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `postgres = host=${server.host} port=${server.port} dbname=postgres user=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      `pool_mode = ${poolMode}`,
      'ignore_startup_parameters = extra_float_digits',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n')
  );
  if (asRoot) {
    const { uid, gid } = postgresIds();
    for (const file of ['', 'users.txt', 'pgbouncer.ini']) chownSync(join(dir, file), uid, gid);
  }
  const ini = join(dir, 'pgbouncer.ini');
  const [command, argv] = asPostgres([PGBOUNCER, ini]);
  const child = spawn(command, argv, { stdio: 'ignore', cwd: POSTGRES_CWD });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await untilListening(port, child, () => `PgBouncer did not start: ${readFileSync(join(dir, 'pgbouncer.log'), 'utf8')}`);
  return {
    connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      // runuser passes SIGTERM on to pgbouncer.
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The reason `signal` aborts with. A held lock keeps nothing alive (its
 * socket and heartbeat are unref'd), so while waiting for the server's word
 * a timer keeps this process from ending with the test unresolved.
 */
export const aborted = (signal: AbortSignal): Promise<unknown> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve(signal.reason);
    const alive = setTimeout(() => {}, 60_000);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(alive);
        resolve(signal.reason);
      },
      { once: true }
    );
  });
