// The waiting side of the wait-cost bench (bench/wait-cost.ts). Once its own
// start-up work has died down (loading and compiling go on for seconds under
// tsx), it starts `waiters` asynchronous waits (`wait: true`) spread over
// `names` names that another process holds, lets them settle into their
// steady state, then prints the CPU time this process used per second of
// waiting (process.cpuUsage, user + system) as JSON, with whether it could
// watch files (without, waits fall back to polling), and exits.
// Usage: wait-cost-peer.ts <dir> <names> <waiters> <settleMs> <measureMs>
import { watch } from 'node:fs';
import { Exclusive } from '../src/index.js';

const [dir, names, waiters, settleMs, measureMs] = process.argv.slice(2);
/** Quiet: under 1 ms of CPU in a 500 ms window (an idle Node process uses well under that). */
const QUIET_MS = 1;
const QUIET_WINDOW_MS = 500;
const QUIET_TIMEOUT_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const cpuMs = (since?: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

async function main(): Promise<void> {
  // Quiet, and (on a machine whose inotify instances are all taken) able to watch, if that comes in time.
  let watching = false;
  for (const start = performance.now(); performance.now() - start < QUIET_TIMEOUT_MS;) {
    const before = process.cpuUsage();
    await sleep(QUIET_WINDOW_MS);
    watching ||= canWatch();
    if (watching && cpuMs(before) < QUIET_MS) break;
  }
  for (let i = 0; i < Number(waiters); i++) {
    Exclusive.acquire({ name: `wait-cost-${i % Number(names)}`, dir, wait: true }).catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
  }
  await sleep(Number(settleMs));
  const before = process.cpuUsage();
  const t0 = performance.now();
  await sleep(Number(measureMs));
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify({ cpuMsPerSecond: cpuMs(before) / seconds, watching })}\n`);
  process.exit(0);
}
/**
 * Whether this process can watch files at all: inotify instances are limited
 * per user (128 by default on Linux) and each process with a watch uses one.
 * The probe stays open, so the process keeps its instance.
 */
function canWatch(): boolean {
  try {
    watch(dir, { persistent: false });
    return true;
  } catch {
    return false;
  }
}

void main();
