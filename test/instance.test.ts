// Single-instance apps (issue 13): a second instance hands its argv, cwd, pid
// and data to the running one over a Unix socket beside the lock file, and
// exits with the reply; Exclusive.notify(). Real processes throughout; the
// running instance is test/fixtures/instance-app.ts, the same line in every copy.
import test from 'ava';
import { chmodSync, existsSync, lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { lockDir, ROOT, run, start, startArgv, type Finished, type Started } from './helpers/processes.js';
import { asUser, buildForUsers } from './helpers/run-as.js';
import { compileCopy, packageCopy } from './helpers/package-copy.js';
import { CannotAcquireLock, Exclusive, InvalidArgumentError, type ArgumentErrorCode } from '../src/index.js';

const APP = 'instance-app.ts';
const NOTIFY = 'instance-notify.ts';
const isRoot = process.getuid?.() === 0;

const running = new Set<Started>();
test.after.always(() => {
  for (const p of running) p.child.kill('SIGKILL');
});

/** The first instance of `name` in `dir`, up and listening. */
async function first(dir: string, name: string, tag = 'A', env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const app = start(APP, [dir, name, tag], env);
  running.add(app);
  await app.waitFor(`first ${tag}\n`);
  return app;
}

function socketOf(dir: string, name: string): string {
  return join(dir, `exclusive-process.${name}.sock`);
}

/** The `got <tag>` lines a first printed, by tag. */
function arrivals(stdout: string): string[] {
  return [...stdout.matchAll(/^got (\S+) /gm)].map((m) => m[1]);
}

/** 'first' once it says it is the first (it then stays up), else how it ended. */
function outcomeOf(app: Started): Promise<'first' | Finished> {
  return new Promise((resolve) => {
    void app.finished.then(resolve);
    app.waitFor('first ', 180_000).then(
      () => resolve('first'),
      () => {} // it ended without becoming the first: `finished` says how
    );
  });
}

async function kill(app: Started): Promise<Finished> {
  app.child.kill('SIGKILL');
  return app.finished;
}

test.serial(
  '20 second instances started at once: the handler sees 20 distinct messages exactly once; each exits with the replied code and prints the message',
  async (t) => {
    const dir = lockDir();
    const app = await first(dir, 'twenty');
    const seconds = await Promise.all(Array.from({ length: 20 }, (_, i) => run(APP, [dir, 'twenty', `s${i}`])));
    seconds.forEach((s, i) => {
      t.is(s.code, 3, s.stderr);
      t.is(s.stdout, `delivered s${i} to A\n`);
    });
    const finished = await kill(app);
    t.deepEqual(arrivals(finished.stdout).sort(), Array.from({ length: 20 }, (_, i) => `s${i}`).sort());
  }
);

test.serial(
  '10 copies started at once with none running: exactly one becomes the first, the 9 others deliver to it while it starts listening',
  async (t) => {
    const dir = lockDir();
    const copies = Array.from({ length: 10 }, (_, i) => {
      const copy = start(APP, [dir, 'race', `c${i}`]);
      running.add(copy);
      return { tag: `c${i}`, copy };
    });
    const outcomes = await Promise.all(copies.map(({ copy }) => outcomeOf(copy)));
    const firsts = copies.filter((_, i) => outcomes[i] === 'first');
    t.is(firsts.length, 1, JSON.stringify(outcomes));
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome === 'first') continue;
      t.is(outcome.code, 3, outcome.stderr);
      t.is(outcome.stdout, `delivered ${copies[i].tag} to ${firsts[0].tag}\n`);
    }
    const got = arrivals((await kill(firsts[0].copy)).stdout).sort();
    t.deepEqual(
      got,
      copies
        .filter((c) => c !== firsts[0])
        .map((c) => c.tag)
        .sort()
    );
  }
);

test.serial(
  'a second instance that comes between the first taking the lock and listening retries, and delivers once it listens',
  async (t) => {
    const dir = lockDir();
    const slow = start('instance-slow-first.ts', [dir, 'gap', '800']);
    running.add(slow);
    await slow.waitFor('locked\n');
    const error = t.throws(() => Exclusive.forever({ name: 'gap', dir, data: { tag: 'early' } }), { instanceOf: CannotAcquireLock });
    t.deepEqual(error?.reply, { exitCode: 3, message: 'delivered early' });
    await kill(slow);
  }
);

test.serial('the message carries the second instance argv, cwd and pid; without die, CannotAcquireLock carries the reply', async (t) => {
  const dir = lockDir();
  const app = await first(dir, 'carry');
  const second = start(APP, [dir, 'carry', 'B']);
  const done = await second.finished;
  t.is(done.code, 3);
  const quiet = await run(APP, [dir, 'carry', 'C'], { NO_DIE: '1' });
  t.is(quiet.code, 0, quiet.stderr);
  t.is(quiet.stdout, `reply ${JSON.stringify({ exitCode: 3, message: 'delivered C to A' })}\n`);
  const got = (await kill(app)).stdout.split('\n').find((line) => line.startsWith('got B '))!;
  t.deepEqual(JSON.parse(got.slice('got B '.length)), { argv: [dir, 'carry', 'B'], cwd: ROOT, pid: second.child.pid });
});

test.serial('the socket is mode 0600 beside the lock file, and goes with the lock at exit (SIGTERM)', async (t) => {
  const dir = lockDir();
  const app = await first(dir, 'tidy');
  const stat = lstatSync(socketOf(dir, 'tidy'));
  t.true(stat.isSocket());
  t.is(stat.mode & 0o777, 0o600);
  app.child.kill('SIGTERM');
  await app.finished;
  t.deepEqual(readdirSync(dir), []);
});

test.serial(
  'the first kill -9ed while second instances keep starting: exactly one becomes the new first, the others deliver to it',
  async (t) => {
    const dir = lockDir();
    const app = await first(dir, 'relay');
    const seconds: Array<{ tag: string; started: Started }> = [];
    for (let i = 0; i < 16; i++) {
      const tag = `r${i}`;
      const s = start(APP, [dir, 'relay', tag]);
      running.add(s);
      seconds.push({ tag, started: s });
      if (i === 3) await Promise.all(seconds.map(({ started }) => started.finished)); // the first four reach A
      if (i === 6) app.child.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    const old = await app.finished;
    // Each second either became the first (and stays up) or ended with a reply.
    const outcomes = await Promise.all(seconds.map(({ started }) => outcomeOf(started)));
    const firsts = seconds.filter((_, i) => outcomes[i] === 'first');
    t.is(firsts.length, 1, JSON.stringify(outcomes));
    const newFirst = firsts[0];
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome === 'first') continue;
      t.is(outcome.code, 3, `${seconds[i].tag}: ${outcome.stdout} ${outcome.stderr}`);
      t.regex(outcome.stdout, new RegExp(`^delivered ${seconds[i].tag} to ${i < 4 ? 'A' : `(A|${newFirst.tag})`}\n$`));
    }
    const later = await kill(newFirst.started);
    const delivered = [...arrivals(old.stdout), ...arrivals(later.stdout)].sort();
    t.deepEqual(
      delivered,
      seconds
        .filter((s) => s !== newFirst)
        .map((s) => s.tag)
        .sort(),
      'each message arrived exactly once'
    );
  }
);

test.serial('a stale socket left by kill -9 is never trusted and is replaced by the next first', async (t) => {
  const dir = lockDir();
  await kill(await first(dir, 'stale'));
  const stale = lstatSync(socketOf(dir, 'stale'));
  t.true(stale.isSocket(), 'kill -9 leaves the socket file');
  const notified = await run(NOTIFY, [dir, 'stale', 'N']);
  t.is(notified.stdout, 'error ERR_NO_INSTANCE\n');
  const app = await first(dir, 'stale', 'B');
  t.not(lstatSync(socketOf(dir, 'stale')).ino, stale.ino);
  const second = await run(APP, [dir, 'stale', 'C']);
  t.is(second.stdout, 'delivered C to B\n');
  await kill(app);
});

test.serial('a throwing handler: the second exits 1 with the message on stderr; the first keeps serving', async (t) => {
  const dir = lockDir();
  const app = await first(dir, 'throws');
  const failed = await run(APP, [dir, 'throws', 'throw1']);
  t.is(failed.code, 1);
  t.is(failed.stdout, '');
  t.is(failed.stderr, 'onSecondInstance failed: cannot open throw1\n');
  t.is((await run(APP, [dir, 'throws', 'ok'])).code, 3);
  await kill(app);
});

/** A raw client of the socket. */
function raw(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path, () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Everything the server sends until it closes the connection. */
function drained(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', () => {});
  });
}

test.serial(
  'a never-answering handler times out (notify: ERR_INSTANCE_TIMEOUT); garbage, oversized and silent clients are refused or dropped; the first keeps serving',
  async (t) => {
    const dir = lockDir();
    const app = await first(dir, 'abuse');
    const path = socketOf(dir, 'abuse');
    const silent = await Promise.all(Array.from({ length: 5 }, () => raw(path)));
    const silentClosed = silent.map(drained);
    const garbage = await raw(path);
    const garbageReply = drained(garbage);
    garbage.write('{"this is": not json\n');
    const huge = await raw(path);
    const hugeReply = drained(huge);
    huge.write(Buffer.alloc(2 * 1024 * 1024, 0x61));
    const hung = run(NOTIFY, [dir, 'abuse', 'hang1', '500']);
    t.is((await run(APP, [dir, 'abuse', 'fine'])).stdout, 'delivered fine to A\n');
    t.is((await hung).stdout, 'error ERR_INSTANCE_TIMEOUT\n');
    t.is(await garbageReply, '{"refused":"malformed message: not a JSON object"}\n');
    t.is(await hugeReply, '{"refused":"the message is larger than 1048576 bytes"}\n');
    t.deepEqual(await Promise.all(silentClosed), ['', '', '', '', ''], 'silent clients are dropped after their deadline');
    t.is((await run(APP, [dir, 'abuse', 'after'])).stdout, 'delivered after to A\n');
    t.deepEqual(arrivals((await kill(app)).stdout).sort(), ['after', 'fine', 'hang1']);
  }
);

test.serial(
  'notify(): ERR_NO_INSTANCE when nobody holds the lock, and when the holder has no onSecondInstance (whose second instances behave as before)',
  async (t) => {
    const dir = lockDir();
    t.is((await run(NOTIFY, [dir, 'nobody-here', 'N'])).stdout, 'error ERR_NO_INSTANCE\n');
    const holder = start('hold.ts', ['plain', dir]);
    running.add(holder);
    await holder.waitFor('held');
    await new Promise((resolve) => setTimeout(resolve, 2_100)); // past the startup grace: it would have listened by now
    t.is((await run(NOTIFY, [dir, 'plain', 'N'])).stdout, 'error ERR_NO_INSTANCE\n');
    const second = await run(APP, [dir, 'plain', 'B']);
    t.is(second.code, 1);
    t.is(second.stderr, `Another 'plain' process is already running (pid ${holder.child.pid}).\n`);
    await kill(holder);
  }
);

test.serial(
  'a long name gets a hashed short socket name in the lock directory; a directory too long for any socket gets ERR_LOCK_DIR',
  async (t) => {
    const dir = lockDir();
    const name = 'n'.repeat(120);
    const app = await first(dir, name);
    const sockets = readdirSync(dir).filter((file) => file.endsWith('.sock'));
    t.is(sockets.length, 1);
    t.regex(sockets[0], /^exclusive-process\.~[0-9a-f]{32}\.sock$/);
    t.is((await run(APP, [dir, name, 'B'])).stdout, `delivered B to A\n`);
    await kill(app);
    const deep = join(dir, 'd'.repeat(100));
    const refused = await run(APP, [deep, 'x', 'A']);
    t.not(refused.code, 0);
    t.regex(refused.stderr, /ERR_LOCK_DIR/);
    t.regex(refused.stderr, /too long for a single-instance socket/);
  }
);

test.serial('a process running as another user (nobody) cannot deliver', async (t) => {
  if (!isRoot) return t.pass('needs root to act as another user');
  const dir = lockDir();
  chmodSync(dir, 0o755);
  const build = buildForUsers([`test/fixtures/${NOTIFY}`]);
  t.teardown(() => build.remove());
  const app = await first(dir, 'mine');
  const other = startArgv(asUser('nobody', build.argv(`test/fixtures/${NOTIFY}`, [dir, 'mine', 'intruder'])).flat(), { cwd: '/' });
  const done = await other.finished;
  t.is(done.stdout, 'error ERR_INSTANCE_PERMISSION\n', done.stderr);
  t.is((await run(NOTIFY, [dir, 'mine', 'me'])).stdout, `reply ${JSON.stringify({ exitCode: 3, message: 'delivered me to A' })}\n`);
  t.deepEqual(arrivals((await kill(app)).stdout), ['me']);
  t.false(existsSync(join(dir, 'intruder')));
});

test.serial("root's processes deliver only to root's running instance, not to another user's that took the name first", async (t) => {
  if (!isRoot) return t.pass('needs root to act as another user');
  const dir = lockDir();
  chmodSync(dir, 0o1777);
  const build = buildForUsers([`test/fixtures/${APP}`]);
  t.teardown(() => build.remove());
  const app = startArgv(asUser('nobody', build.argv(`test/fixtures/${APP}`, [dir, 'taken', 'N'])).flat(), { cwd: '/' });
  running.add(app);
  await app.waitFor('first N\n');
  t.is((await run(NOTIFY, [dir, 'taken', 'root'])).stdout, 'error ERR_INSTANCE_PERMISSION\n');
  app.child.kill('SIGTERM');
  await app.finished;
  t.deepEqual(arrivals((await app.finished).stdout), [], "nobody's instance got nothing of root's");
});

test('silent clients do not keep the running instance alive once its work is done', async (t) => {
  const dir = lockDir();
  const app = await first(dir, 'brief', 'A', { LIFE_MS: '3000' });
  // A new silent client every second for 15 s, the first at once: each alone would hold a connection for its 5 s deadline.
  const clients: Socket[] = [];
  let connecting = true;
  const silentClient = (): void => {
    const client = connect(socketOf(dir, 'brief'));
    client.on('error', () => {});
    clients.push(client);
  };
  silentClient();
  const timer = setInterval(silentClient, 1000);
  const stop = setTimeout(() => {
    connecting = false;
    clearInterval(timer);
  }, 15_000);
  t.teardown(() => {
    clearInterval(timer);
    clearTimeout(stop);
    clients.forEach((c) => c.destroy());
  });
  const end = await app.finished;
  t.is(end.code, 0);
  t.true(connecting, 'the instance ended only once the silent clients stopped coming');
});

test.serial(
  'the worker-thread delivery (Windows pipes, or no native binding), compiled: the reply, and ERR_INSTANCE_TIMEOUT from a handler that never answers',
  async (t) => {
    const dir = lockDir();
    const pkg = packageCopy(dir);
    compileCopy(pkg);
    const script = join(dir, 'worker-deliver.cjs');
    writeFileSync(
      script,
      `const { deliverThroughWorker } = require(${JSON.stringify(join(pkg, 'dist/instance/client.js'))});
const { requestFrame } = require(${JSON.stringify(join(pkg, 'dist/instance/protocol.js'))});
const [path, tag, timeout] = process.argv.slice(2);
try { console.log(JSON.stringify(deliverThroughWorker(path, requestFrame({ tag }), Number(timeout)))); }
catch (error) { console.log(error.code); }`
    );
    const deliverAs = async (tag: string, timeout: number): Promise<string> =>
      (await startArgv([process.execPath, script, socketOf(dir, 'worker'), tag, String(timeout)], { cwd: dir }).finished).stdout;
    const app = await first(dir, 'worker');
    t.is(await deliverAs('w1', 10_000), `${JSON.stringify({ kind: 'replied', reply: { exitCode: 3, message: 'delivered w1 to A' } })}\n`);
    t.is(await deliverAs('hang2', 300), 'ERR_INSTANCE_TIMEOUT\n');
    t.deepEqual(arrivals((await kill(app)).stdout), ['w1', 'hang2']);
    t.regex(await deliverAs('w3', 10_000), /^\{"kind":"absent"/, 'a stale socket: nobody took it');
  }
);

test('single-instance options are checked eagerly, with typed errors naming the option', async (t) => {
  const dir = lockDir();
  const invalid = (fn: () => unknown, code: ArgumentErrorCode, message: string | RegExp): void => {
    const error = t.throws(fn, { instanceOf: InvalidArgumentError });
    t.is(error?.code, code);
    if (typeof message === 'string') t.is(error?.message, message);
    else t.regex(error?.message ?? '', message);
  };
  invalid(
    () => Exclusive.forever({ name: 'v', dir, onSecondInstance: 5 as never }),
    'ERR_INVALID_ARG_TYPE',
    'options.onSecondInstance must be a function, got number 5'
  );
  invalid(() => Exclusive.forever({ name: 'v', dir, data: 1n }), 'ERR_INVALID_ARG_VALUE', /^options\.data must be JSON-serializable: /);
  invalid(
    () => Exclusive.forever({ name: 'v', dir, data: 'x'.repeat(2 ** 20) }),
    'ERR_INVALID_ARG_VALUE',
    /^options\.data is too large: .* the limit is 1048576$/
  );
  invalid(
    () => Exclusive.forever({ name: 'v', dir, data: {}, wait: 100 }),
    'ERR_INVALID_ARG_VALUE',
    /^options\.wait cannot be combined with onSecondInstance or data/
  );
  invalid(() => Exclusive.lock({ name: 'v', dir, data: 1 } as never), 'ERR_INVALID_ARG_VALUE', /^options\.data is not an option/);
  invalid(
    () => Exclusive.forever({ name: 'v', dir, data: 1, mode: 'shared' }),
    'ERR_INVALID_ARG_VALUE',
    /^options\.mode and options\.limit cannot be combined with onSecondInstance or data/
  );
  invalid(
    () => Exclusive.forever({ name: 'v', dir, onSecondInstance: () => ({}), limit: 2 }),
    'ERR_INVALID_ARG_VALUE',
    /^options\.mode and options\.limit cannot be combined with onSecondInstance or data/
  );
  const rejects = async (promise: Promise<unknown>, code: ArgumentErrorCode, message: RegExp): Promise<void> => {
    const error = await t.throwsAsync(promise, { instanceOf: InvalidArgumentError });
    t.is(error?.code, code);
    t.regex(error?.message ?? '', message);
  };
  await rejects(Exclusive.notify('', {}), 'ERR_INVALID_LOCK_NAME', /^name must not be empty$/);
  await rejects(
    Exclusive.notify('v', {}, { dir, timeout: 0 }),
    'ERR_INVALID_ARG_VALUE',
    /^options\.timeout must be an integer from 1 to 2147483647, got 0$/
  );
  await rejects(Exclusive.notify('v', {}, { dir, timeuot: 5 } as never), 'ERR_INVALID_ARG_VALUE', /did you mean 'timeout'\?/);
  await rejects(Exclusive.notify('v', {}, { dir, wait: 5 } as never), 'ERR_INVALID_ARG_VALUE', /did you mean 'timeout'\?/);
  t.deepEqual(readdirSync(dir), [], 'nothing was created');
});

test.serial('the portable driver: second instances deliver to the first the same way, and the socket goes with the pid file', async (t) => {
  const dir = lockDir();
  const env = { DRIVER: 'portable' };
  const app = await first(dir, 'portable', 'A', env);
  const seconds = await Promise.all(['p1', 'p2', 'p3'].map((tag) => run(APP, [dir, 'portable', tag], env)));
  for (const [i, s] of seconds.entries()) t.is(s.stdout, `delivered p${i + 1} to A\n`, s.stderr);
  app.child.kill('SIGTERM');
  t.deepEqual(arrivals((await app.finished).stdout).sort(), ['p1', 'p2', 'p3']);
  t.deepEqual(readdirSync(dir), []);
});
