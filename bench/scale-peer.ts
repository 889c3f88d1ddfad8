// The measured side of bench/scale.ts, in a fresh process so that its
// memory and descriptors are its own. Prints one JSON line and exits.
// Usage: scale-peer.ts held <dir> <locks>
//        scale-peer.ts waiters <dir> <name> <waiters> <measureMs>
import { readdirSync, stat } from 'node:fs';
import { lookup } from 'node:dns';
import { Exclusive, type ExclusiveLock } from '../src/index.js';

const [mode, dir, ...rest] = process.argv.slice(2);
const SAMPLES = 200;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const openDescriptors = (): number => readdirSync('/proc/self/fd').length;

/** RSS and open descriptors before and after taking `locks` distinct locks (all held at once). */
async function held(locks: number): Promise<object> {
  void Exclusive.lock({ name: 'scale-warm-up', dir }).release(); // loads the driver: not part of the per-lock cost
  global.gc?.();
  await sleep(100);
  const rss0 = process.memoryUsage().rss;
  const fds0 = openDescriptors();
  const t0 = performance.now();
  const held: ExclusiveLock[] = [];
  for (let i = 0; i < locks; i++) held.push(Exclusive.lock({ name: `scale-held-${i}`, dir }));
  const acquireMs = performance.now() - t0;
  global.gc?.();
  await sleep(100);
  const rss1 = process.memoryUsage().rss;
  const fds1 = openDescriptors();
  const t1 = performance.now();
  for (const lock of held) void lock.release();
  const releaseMs = performance.now() - t1;
  const fds2 = openDescriptors();
  return { rssDelta: rss1 - rss0, fdsDelta: fds1 - fds0, idleFdsAfterRelease: fds2 - fds0, acquireMs, releaseMs };
}

/** Latency of `op` in milliseconds: median and p95 of SAMPLES sequential calls. */
async function latency(op: () => Promise<void>): Promise<{ median: number; p95: number }> {
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    await op();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(SAMPLES / 2)], p95: times[Math.floor(SAMPLES * 0.95)] };
}

const fsStat = (): Promise<void> => new Promise((resolve, reject) => stat(dir, (error) => (error ? reject(error) : resolve())));
const dnsLookup = (): Promise<void> =>
  new Promise((resolve, reject) => lookup('localhost', (error) => (error ? reject(error) : resolve())));

/** fs.stat and dns.lookup latency without and with `waiters` async waiters on `name` (held by our parent), and the CPU they burn. */
async function waiters(name: string, count: number, measureMs: number): Promise<object> {
  const before = { stat: await latency(fsStat), dns: await latency(dnsLookup) };
  const controller = new AbortController();
  const waits = Array.from({ length: count }, () =>
    Exclusive.acquire({ name, dir, wait: true, signal: controller.signal }).then(
      () => {
        throw new Error('a waiter got a lock its holder never released');
      },
      (error: unknown) => {
        if (!controller.signal.aborted) throw error;
      }
    )
  );
  await sleep(1000); // set up, and past the first polls
  const during = { stat: await latency(fsStat), dns: await latency(dnsLookup) };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(measureMs);
  const cpu = process.cpuUsage(cpu0);
  const cpuMsPerSecond = (cpu.user + cpu.system) / 1000 / ((performance.now() - t0) / 1000);
  controller.abort();
  await Promise.all(waits);
  return { before, during, cpuMsPerSecond };
}

async function main(): Promise<void> {
  const result = mode === 'held' ? await held(Number(rest[0])) : await waiters(rest[0], Number(rest[1]), Number(rest[2]));
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

void main();
