import anyTest, { type TestFn } from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { inspect as printed } from 'node:util';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { Exclusive, LockDriverError } from '../../src/index.js';
import { LockLostError, redis } from '../../src/redis.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';
import { modesSuite } from '../helpers/modes-suite.js';
import { lockDir, run, start, type Started } from '../helpers/processes.js';
import { closeRedisClients, redisDriver } from '../helpers/redis-driver.js';

// Serial: real processes and timing bounds on a two-core machine.
const test = (anyTest as TestFn<unknown>).serial;

let server: RedisServer;

anyTest.before(async () => {
  // Fails (not skips) without redis-server, saying to install it.
  server = await startRedis();
});

anyTest.after.always(async () => {
  closeRedisClients();
  await server?.stop();
});

/** A plain ioredis client for looking at the server from outside the driver. */
async function inspect<T>(use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(server.url);
  try {
    return await use(client);
  } finally {
    client.disconnect();
  }
}

let names = 0;
const uniqueName = (what: string): string => `${what}-${process.pid}-${++names}`;

/** The pid and fencing token a redis-hold.ts process printed. */
async function held(holder: Started): Promise<{ pid: number; token: bigint; at: number }> {
  const line = (await holder.waitFor('held', 30_000)).split('\n').find((l) => l.startsWith('held '))!;
  const [, pid, token, at] = line.split(' ');
  return { pid: Number(pid), token: BigInt(token), at: Number(at) };
}

const hold = (flavour: string, name: string, leaseMs: number, holdMs = '', ...rest: string[]): Started =>
  start('redis-hold.ts', [flavour, server.url, name, String(leaseMs), holdMs, ...rest]);

for (const flavour of ['ioredis', 'node-redis'] as const) {
  test(`${flavour}: 8 processes x 100 read-modify-write increments end at exactly 800, fencing tokens strictly increase in the order of the holds`, async (t) => {
    const dir = lockDir();
    const counter = join(dir, 'counter');
    writeFileSync(counter, '0');
    const name = uniqueName('counter');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => run('redis-counter.ts', [flavour, server.url, name, counter, '100']))
    );
    for (const result of results) t.is(result.code, 0, result.stderr);
    t.is(readFileSync(counter, 'utf8'), '800');
    const tokens = readFileSync(`${counter}.tokens`, 'utf8').trim().split('\n').map(BigInt);
    t.is(tokens.length, 800);
    t.true(
      tokens.every((token, i) => i === 0 || token > tokens[i - 1]),
      'tokens appended under the lock grow strictly'
    );
  });

  test(`${flavour}: kill -9 of the holder: a waiting process gets the lock within 200 ms after the lease ends, not before`, async (t) => {
    const name = uniqueName('killed');
    const holder = hold(flavour, name, 1500);
    const { pid } = await held(holder);
    const waiter = hold(flavour, name, 1500);
    await waiter.waitFor('waiting', 30_000);
    await sleep(700); // the waiter waits (and the holder extended its lease)
    holder.child.kill('SIGKILL');
    await holder.finished;
    // The lease end the server keeps for the dead holder (server ms; same machine clock as Date.now()).
    const leaseEnd = await inspect(async (client) => {
      const key = `exclusive-process:{${name}}:holders`;
      const [token] = await client.zrange(key, '0', '0');
      return Number(await client.zscore(key, token));
    });
    const next = await held(waiter);
    t.log(`the waiter got the lock ${next.at - leaseEnd} ms after the dead holder's lease ended`);
    t.not(next.pid, pid);
    t.true(next.at >= leaseEnd, `got it ${leaseEnd - next.at} ms before the lease ended`);
    t.true(next.at <= leaseEnd + 200, `got it ${next.at - leaseEnd} ms after the lease ended`);
    waiter.child.kill('SIGKILL');
  });

  test(`${flavour}: a holder frozen (SIGSTOP) past its lease: another takes over; resumed, it finds its signal aborted and its release leaves the new holder alone`, async (t) => {
    const name = uniqueName('frozen');
    const first = hold(flavour, name, 1000);
    const a = await held(first);
    first.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    const second = hold(flavour, name, 1000);
    t.teardown(() => {
      first.child.kill('SIGKILL');
      second.child.kill('SIGKILL');
    });
    const b = await held(second);
    t.log(`the second process got the lock ${b.at - stoppedAt} ms after the first froze`);
    t.true(b.token > a.token);
    first.child.kill('SIGCONT');
    const told = await first.waitFor('released', 10_000);
    t.regex(told, /lost ERR_LOCK_LOST /);
    const end = await first.finished;
    t.is(end.code, 0, end.stderr);
    const driver = redis({ url: server.url });
    const holders = await Exclusive.holders(name, { driver });
    t.deepEqual(
      holders.map((h) => h.pid),
      [b.pid],
      'the new holder still holds it after the resumed one released'
    );
    t.false(second.child.exitCode !== null, 'the second holder is still running');
  });

  test(`${flavour}: CLIENT KILL of the holder's connection: it is told at once; the lock can be taken again`, async (t) => {
    const name = uniqueName('client-kill');
    const holder = hold(flavour, name, 5000);
    t.teardown(() => holder.child.kill('SIGKILL'));
    await held(holder);
    const killedAt = Date.now();
    await inspect((client) => client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'));
    const output = await holder.waitFor('released', 10_000);
    const lostAt = Number(/lost ERR_LOCK_LOST (\d+)/.exec(output)![1]);
    t.log(`told ${lostAt - killedAt} ms after CLIENT KILL`);
    t.true(lostAt - killedAt < 1000);
    t.is((await holder.finished).code, 0);
    // The told holder gave the lock back (compare-and-delete): free at once.
    const next = hold(flavour, name, 5000, '1');
    const ended = await next.finished;
    t.is(ended.code, 0, ended.stderr);
  });

  test(`${flavour}: a server restart: the holder is told, nothing hangs, and the lock works again afterwards`, async (t) => {
    const name = uniqueName('restart');
    const holder = hold(flavour, name, 5000);
    t.teardown(() => holder.child.kill('SIGKILL'));
    await held(holder);
    const restartedAt = Date.now();
    await server.restart();
    const output = await holder.waitFor('released', 15_000);
    t.regex(output, /lost ERR_LOCK_LOST /);
    t.log(`told ${Number(/lost ERR_LOCK_LOST (\d+)/.exec(output)![1]) - restartedAt} ms after the restart began`);
    t.is((await holder.finished).code, 0);
    const next = hold(flavour, name, 5000, '1');
    const again = await held(next);
    t.true(again.token >= 1n);
    const ended = await next.finished;
    t.is(ended.code, 0, ended.stderr);
  });

  test(`${flavour}: a process waiting through a server restart keeps waiting and gets the lock (the restart forgot the holder's lease)`, async (t) => {
    const name = uniqueName('restart-waiter');
    const holder = hold(flavour, name, 5000);
    t.teardown(() => holder.child.kill('SIGKILL'));
    await held(holder);
    const waiter = hold(flavour, name, 5000, '1');
    t.teardown(() => waiter.child.kill('SIGKILL'));
    await waiter.waitFor('waiting', 30_000);
    await sleep(300); // waiting at the server by now
    const restartedAt = Date.now();
    await server.restart();
    const got = await held(waiter);
    t.log(`the waiter got the lock ${got.at - restartedAt} ms after the restart began`);
    const ended = await waiter.finished;
    t.is(ended.code, 0, ended.stderr);
    t.regex(await holder.waitFor('released', 15_000), /lost ERR_LOCK_LOST /);
  });

  test(`${flavour}: in-process: a wait that runs out while the server does not answer (CLIENT PAUSE) fails with ERR_DRIVER_UNAVAILABLE, not as timed out`, async (t) => {
    const holder = await redisDriver(flavour, server.url, { lease: 5000 });
    const waiter = await redisDriver(flavour, server.url, { lease: 5000, connectTimeout: 200 });
    const name = uniqueName('paused');
    const lock = await Exclusive.acquire({ name, driver: holder });
    const waiting = Exclusive.acquire({ name, driver: waiter, wait: 1500 });
    await sleep(200);
    await inspect((client) => client.call('CLIENT', 'PAUSE', '2500', 'ALL'));
    const error = await t.throwsAsync(waiting, { instanceOf: LockDriverError });
    t.is(error?.code, 'ERR_DRIVER_UNAVAILABLE');
    await sleep(2500);
    await lock.release();
  });

  test(`${flavour}: a process waiting through a 6 s outage gets the lock, then ends by itself (no connection of the driver left open)`, async (t) => {
    const name = uniqueName('outage-waiter');
    const holder = hold(flavour, name, 5000);
    t.teardown(() => holder.child.kill('SIGKILL'));
    await held(holder);
    const waiter = hold(flavour, name, 5000, '1', 'natural');
    t.teardown(() => waiter.child.kill('SIGKILL'));
    await waiter.waitFor('waiting', 30_000);
    await sleep(300);
    await server.restart(6000); // longer than the 5 s a subscriber connection is given to open
    const back = Date.now();
    const got = await held(waiter);
    t.log(`the waiter got the lock ${got.at - back} ms after the server was back`);
    await waiter.waitFor('released', 10_000);
    const ended = await Promise.race([waiter.finished, sleep(5000, 'still running')]);
    t.like(ended, { code: 0 }, 'the waiter ended by itself within 5 s of its work');
  });

  test(`${flavour}: in-process: an abort while the server does not answer (CLIENT PAUSE) ends a wait and a first try at once, with the abort's reason`, async (t) => {
    const holder = await redisDriver(flavour, server.url, { lease: 5000 });
    const waiter = await redisDriver(flavour, server.url, { lease: 400 }); // a waiting writer tries again every 200 ms
    const name = uniqueName('paused-abort');
    const lock = await Exclusive.acquire({ name, driver: holder });
    const waiting = new AbortController();
    const wait = Exclusive.acquire({ name, driver: waiter, wait: true, signal: waiting.signal });
    await sleep(300);
    await inspect((client) => client.call('CLIENT', 'PAUSE', '3000', 'ALL'));
    const trying = new AbortController();
    const first = Exclusive.acquire({ name: uniqueName('paused-first'), driver: waiter, wait: true, signal: trying.signal });
    await sleep(500); // both have a command in flight that the server will not answer for 2.5 s
    const abortedAt = performance.now();
    waiting.abort(new Error('stop waiting'));
    trying.abort(new Error('stop trying'));
    await t.throwsAsync(wait, { message: 'stop waiting' });
    await t.throwsAsync(first, { message: 'stop trying' });
    const took = performance.now() - abortedAt;
    t.log(`both ended ${Math.round(took)} ms after the abort`);
    t.true(took < 1000, `${took} ms`);
    await sleep(2500);
    await lock.release();
  });

  test(`${flavour}: in-process: lock.signal aborts with LockLostError when the key is deleted behind the holder's back`, async (t) => {
    const driver = await redisDriver(flavour, server.url, { lease: 600 });
    const name = uniqueName('deleted');
    const lock = await Exclusive.acquire({ name, driver });
    await inspect((client) => client.del(`exclusive-process:{${name}}:holders`));
    const reason = await new Promise<unknown>((resolve) => lock.signal.addEventListener('abort', () => resolve(lock.signal.reason)));
    t.true(reason instanceof LockLostError);
    await lock.release();
    t.pass();
  });
}

for (const flavour of ['ioredis', 'url'] as const) {
  test(`${flavour}: a holder that ends by process.exit() or an uncaught exception gives the lock back at once (not after its 60 s lease)`, async (t) => {
    for (const how of ['exit', 'throw']) {
      const name = uniqueName(`exit-${how}`);
      const result = await run('redis-exit.ts', [flavour, server.url, name, how]);
      t.not(result.stdout, 'unexpected', how);
      const left = await inspect((client) => client.zcard(`exclusive-process:{${name}}:holders`));
      t.is(left, 0, `${how}: the lock is still held after the process ended`);
    }
  });
}

for (const flavour of ['ioredis', 'url'] as const) {
  test(`${flavour}: a holder ended by SIGTERM, SIGINT or SIGHUP gives the lock back at once (not after its 60 s lease), and dies by that signal`, async (t) => {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      const name = uniqueName(`signal-${signal}`);
      const holder = start('redis-exit.ts', [flavour, server.url, name, signal]);
      t.teardown(() => holder.child.kill('SIGKILL'));
      await holder.waitFor('held');
      holder.child.kill(signal);
      t.is((await holder.finished).signal, signal);
      const left = await inspect((client) => client.zcard(`exclusive-process:{${name}}:holders`));
      t.is(left, 0, `${signal}: the lock is still held after the process ended`);
    }
  });
}

for (const flavour of ['ioredis', 'node-redis'] as const) {
  test(`${flavour}: in-process: a holder whose connection is killed is told, and its lease still keeps others out until it releases`, async (t) => {
    const driver = await redisDriver(flavour, server.url, { lease: 5000 });
    const other = await redisDriver(flavour, server.url, { lease: 5000 });
    const name = uniqueName('kill-keeps');
    const lock = await Exclusive.acquire({ name, driver });
    const lost = new Promise<unknown>((resolve) => lock.signal.addEventListener('abort', () => resolve(lock.signal.reason)));
    await inspect((client) => client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'));
    t.true((await lost) instanceof LockLostError);
    await sleep(300); // the connection is back by now
    await t.throwsAsync(Exclusive.acquire({ name, driver: other }), { code: 'ERR_LOCK_HELD' });
    await lock.release();
    const next = await Exclusive.acquire({ name, driver: other });
    await next.release();
  });
}

test('fencing tokens strictly increase over 1000 acquisitions spread across 4 processes and both clients', async (t) => {
  const dir = lockDir();
  const counter = join(dir, 'counter');
  writeFileSync(counter, '0');
  const name = uniqueName('fence');
  const flavours = ['ioredis', 'node-redis', 'url', 'ioredis'];
  const results = await Promise.all(flavours.map((flavour) => run('redis-counter.ts', [flavour, server.url, name, counter, '250'])));
  for (const result of results) t.is(result.code, 0, result.stderr);
  const tokens = readFileSync(`${counter}.tokens`, 'utf8').trim().split('\n').map(BigInt);
  t.is(tokens.length, 1000);
  t.true(tokens.every((token, i) => i === 0 || token > tokens[i - 1]));
  t.is(readFileSync(counter, 'utf8'), '1000');
});

test('bad options are TypeErrors at once', (t) => {
  for (const [options, code] of [
    [{ url: 'http://localhost:6379' }, 'ERR_INVALID_ARG_VALUE'],
    [{ url: 'not a url' }, 'ERR_INVALID_ARG_VALUE'],
    [{ url: 'redis://localhost/abc' }, 'ERR_INVALID_ARG_VALUE'],
    [{}, 'ERR_INVALID_ARG_VALUE'],
    [{ url: 'redis://localhost', client: { status: 'wait', call() {}, duplicate() {} } }, 'ERR_INVALID_ARG_VALUE'],
    [{ client: { get() {} } }, 'ERR_INVALID_ARG_TYPE'],
    [{ url: 'redis://localhost', lease: 10 }, 'ERR_INVALID_ARG_VALUE'],
    [{ url: 'redis://localhost', lease: '5s' }, 'ERR_INVALID_ARG_TYPE'],
    [{ url: 'redis://localhost', prefix: 'a{b}' }, 'ERR_INVALID_ARG_VALUE'],
    [{ url: 'redis://localhost', ttl: 5 }, 'ERR_INVALID_ARG_VALUE'],
  ] as const) {
    t.like(
      t.throws(() => redis(options as never)),
      { name: 'TypeError', code },
      JSON.stringify(options)
    );
  }
  t.regex(t.throws(() => redis({ url: 'redis://localhost', ttl: 5 } as never)).message, /did you mean 'lease'/);
});

test('an unreachable server, a server that never answers and a wrong password: LockDriverError ERR_DRIVER_UNAVAILABLE within the bound', async (t) => {
  const secured = await startRedis({ password: 's3cret' });
  t.teardown(() => secured.stop());
  const closedPort = await freePort();
  const cases: Array<[string, string, RegExp]> = [
    ['refused', `redis://127.0.0.1:${closedPort}`, /Cannot connect to Redis at 127\.0\.0\.1:\d+\/0: .*ECONNREFUSED/],
    ['wrong password', `redis://default:wrong@127.0.0.1:${secured.port}`, /Cannot connect to Redis at 127\.0\.0\.1:\d+\/0: .*WRONGPASS/],
    ['no password', `redis://127.0.0.1:${secured.port}`, /NOAUTH/],
    ['unroutable', 'redis://10.255.255.1:6379', /Redis at 10\.255\.255\.1:6379\/0/],
  ];
  for (const [what, url, message] of cases) {
    const began = performance.now();
    const error = await t.throwsAsync(Exclusive.acquire({ name: 'x', driver: redis({ url, connectTimeout: 1000 }) }), {
      instanceOf: LockDriverError,
    });
    const took = performance.now() - began;
    t.is(error?.code, 'ERR_DRIVER_UNAVAILABLE', what);
    t.regex(error?.message ?? '', message, what);
    t.false((error?.message ?? '').includes('wrong'), 'the password is never shown');
    t.false(/\bwrong\b/.test(printed(error)), 'nor printed with its cause');
    t.true(took < 2500, `${what}: ${Math.round(took)} ms`);
  }
  // A given client that cannot reach its server: the same error, within connectTimeout.
  const client = new Redis({ port: closedPort, lazyConnect: true, maxRetriesPerRequest: null });
  t.teardown(() => client.disconnect());
  const began = performance.now();
  await t.throwsAsync(Exclusive.acquire({ name: 'x', driver: redis({ client, connectTimeout: 500 }) }), { code: 'ERR_DRIVER_UNAVAILABLE' });
  t.true(performance.now() - began < 2000);
});

// The modes of every driver (shared, counted), with a 1 s lease: a slot freed by kill -9 returns when it ends.
modesSuite(anyTest, 'redis (ioredis)', () => `redis:ioredis:1000:${server.url}`);
modesSuite(anyTest, 'redis (node-redis)', () => `redis:node-redis:1000:${server.url}`);
