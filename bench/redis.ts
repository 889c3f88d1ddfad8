// The redis section of `npm run bench`: this driver beside redlock and redis-semaphore (npm), in one run,
// against a private redis-server started for it (test/helpers/redis-server.ts), over loopback, all through ioredis.
import { existsSync } from 'node:fs';
import Redis from 'ioredis';
import { Mutex } from 'redis-semaphore';
import { Exclusive, exclusive } from '../src/index.js';
import { redis } from '../src/drivers/redis/index.js';
import { REDIS_SERVER, startRedis } from '../test/helpers/redis-server.js';
import { sleep, summarize } from './stats.js';

/** redlock 4.2 ships no types: the part used here. */
interface Redlock {
  lock(resource: string, ttl: number): Promise<{ unlock(): Promise<unknown> }>;
}
type RedlockClass = new (clients: unknown[], options: Record<string, number>) => Redlock;

interface Row {
  readonly name: string;
  readonly uncontended: number[];
  readonly handoff: number[];
}

const UNCONTENDED = 500;
const HANDOFFS = 60;
/** How long a waiter waits before the holder lets go: long enough for every library to be waiting, plus up to 20 ms at random, so that a poller's phase is random. */
const SETTLE_MS = 30;
const LEASE = 10_000;

const median = (samples: readonly number[]): number => summarize(samples).median;
const p95 = (samples: readonly number[]): number => summarize(samples).p95;

/** `UNCONTENDED` timed rounds of `round` after 50 warm-up ones. */
async function timed(round: () => Promise<void>, count = UNCONTENDED): Promise<number[]> {
  for (let i = 0; i < 50; i++) await round();
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await round();
    samples.push(performance.now() - t0);
  }
  return samples;
}

/** Hand-offs: a holder takes the lock, a waiter starts waiting, the holder releases; time from release() to the waiter's lock. */
async function handoffs(take: (who: 0 | 1) => Promise<() => Promise<void>>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < 5 + HANDOFFS; i++) {
    const release = await take(0);
    const waiting = take(1).then((next) => ({ next, t1: performance.now() }));
    await sleep(SETTLE_MS + Math.random() * 20);
    const t0 = performance.now();
    await release();
    const { next, t1 } = await waiting;
    await next();
    if (i >= 5) samples.push(t1 - t0);
  }
  return samples;
}

async function ours(url: string): Promise<Row> {
  const clients = [new Redis(url), new Redis(url)];
  const drivers = clients.map((client) => redis({ client, lease: LEASE }));
  const job = exclusive(async () => {}, { name: 'bench-uncontended', driver: drivers[0] });
  const uncontended = await timed(async () => void (await job()));
  const handoff = await handoffs(async (who) => {
    const lock = await Exclusive.acquire({ name: 'bench-handoff', driver: drivers[who], wait: true });
    return () => lock.release();
  });
  for (const d of drivers) d.cleanup?.();
  for (const c of clients) c.disconnect();
  return { name: 'exclusive-process/redis', uncontended, handoff };
}

async function redlock(url: string): Promise<Row> {
  const Redlock = require('redlock') as RedlockClass;
  const clients = [new Redis(url), new Redis(url)];
  // Its defaults: retries every 200 ms plus up to 200 ms of jitter; retryCount -1 waits for ever.
  const locks = clients.map((client) => new Redlock([client], { retryCount: -1, retryDelay: 200, retryJitter: 200 }));
  const uncontended = await timed(async () => {
    const lock = await locks[0].lock('bench-redlock-uncontended', LEASE);
    await lock.unlock();
  });
  const handoff = await handoffs(async (who) => {
    const lock = await locks[who].lock('bench-redlock-handoff', LEASE);
    return async () => void (await lock.unlock());
  });
  for (const c of clients) c.disconnect();
  return { name: 'redlock 4.2 (retryDelay 200 ms, jitter 200 ms: its defaults)', uncontended, handoff };
}

async function semaphore(url: string): Promise<Row> {
  const clients = [new Redis(url), new Redis(url)];
  // Its defaults: lockTimeout 10 s refreshed in the background, retryInterval 10 ms.
  const uncontended = await timed(async () => {
    const mutex = new Mutex(clients[0], 'bench-semaphore-uncontended', { lockTimeout: LEASE });
    await mutex.acquire();
    await mutex.release();
  });
  const handoff = await handoffs(async (who) => {
    const mutex = new Mutex(clients[who], 'bench-semaphore-handoff', { lockTimeout: LEASE, acquireTimeout: 60_000 });
    await mutex.acquire();
    return () => mutex.release();
  });
  for (const c of clients) c.disconnect();
  return { name: 'redis-semaphore 5.8 Mutex (retryInterval 10 ms: its default)', uncontended, handoff };
}

/** Starts a server, measures the three libraries one after the other, stops it. About 15 s. */
export async function benchRedis(): Promise<{ text: string }> {
  if (!existsSync(REDIS_SERVER)) return { text: 'redis: skipped (redis-server is not installed: apt-get install -y redis-server)' };
  const server = await startRedis();
  try {
    const rows = [await ours(server.url), await redlock(server.url), await semaphore(server.url)];
    return { text: table(rows) };
  } finally {
    await server.stop();
  }
}

function table(rows: readonly Row[]): string {
  const f = (x: number): string => x.toFixed(3);
  const fastest = Math.min(...rows.map((row) => median(row.uncontended)));
  const ourHandoff = median(rows[0].handoff);
  const lines = [
    '',
    `### redis driver beside redlock and redis-semaphore (redis-server 7 on loopback, ioredis clients, one run)`,
    '',
    '| library | uncontended acquire + release, median ms | p95 ms | x fastest | hand-off median ms | p95 ms | x ours |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (row) =>
        `| ${row.name} | ${f(median(row.uncontended))} | ${f(p95(row.uncontended))} | ${(median(row.uncontended) / fastest).toFixed(2)} | ` +
        `${f(median(row.handoff))} | ${f(p95(row.handoff))} | ${(median(row.handoff) / ourHandoff).toFixed(1)} |`
    ),
    '',
    `Uncontended: ${UNCONTENDED} rounds each; hand-off: ${HANDOFFS} rounds each, from the holder's release() to the waiter's lock, ` +
      `the waiter waiting for ${SETTLE_MS} to ${SETTLE_MS + 20} ms first (random, so that a poller's phase is random). Targets: hand-off faster than both; uncontended within 1.5x of the fastest ` +
      `(ours is ${(median(rows[0].uncontended) / fastest).toFixed(2)}x).`,
  ];
  return lines.join('\n');
}

if (require.main === module) {
  benchRedis().then(
    (r) => console.log(r.text),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    }
  );
}
