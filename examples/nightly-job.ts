// A cron job that must never overlap with itself: run it twice at once and
// the second copy prints "Another '...' process is already running (pid N)."
// and exits 1, while the first finishes its work.
//
//   npx tsx examples/nightly-job.ts
import { Exclusive } from 'exclusive-process';

const lock = Exclusive.forever({ die: true }); // held until this process ends, whatever ends it
console.log(`nightly job: running as pid ${process.pid}, lock ${lock.name}`);
console.log(`nightly job: lock file ${lock.lockfile}`);

const workMs = Number(process.env.EXAMPLE_WORK_MS ?? 1500);
setTimeout(() => console.log('nightly job: done'), workMs);
