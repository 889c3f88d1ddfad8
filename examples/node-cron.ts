// A node-cron 4 task that runs once per fire across every process running
// this script: start three copies at once, each fire prints in one of them.
//
//   npx tsx examples/node-cron.ts & npx tsx examples/node-cron.ts & npx tsx examples/node-cron.ts
//
// DATABASE_URL set: the postgres driver (processes on any host that reaches
// the database); else posix locks on this host. EXAMPLE_RUN_MS: stop after
// that long (default: run until killed).
import cron from 'node-cron';
import { coordinator } from 'exclusive-process/node-cron';
import { postgres } from 'exclusive-process/postgres';

const driver = process.env.DATABASE_URL ? postgres({ connectionString: process.env.DATABASE_URL }) : undefined; // undefined: posix
const runCoordinator = coordinator({ driver });

const task = cron.schedule(
  '* * * * * *',
  async ({ date }) => {
    console.log(`tick ${date.toISOString()} ran in ${process.pid}`);
    await sleep(300); // the real work
  },
  { name: 'tick', distributed: true, distributedLease: 3_000, runCoordinator }
);

let skipped = 0; // fires another process ran
task.on('execution:skipped', () => {
  skipped++;
});
if (process.env.EXAMPLE_RUN_MS !== undefined) {
  setTimeout(() => {
    void Promise.resolve(task.destroy()).then(() => console.log(`skipped ${skipped}`));
  }, Number(process.env.EXAMPLE_RUN_MS));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
