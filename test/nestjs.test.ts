// examples/nestjs, compiled by tsc as Nest apps are (experimentalDecorators,
// emitDecoratorMetadata) against the built package, run as two replicas at
// once: two jobs (one per order of @Cron and @Exclusive({ skip: true })),
// every second, 300 ms each, for 5 s. Each fire runs in exactly one replica,
// never in both at once; the other skips it quietly; the job's injected
// JobLog writes the lines. And the discovery example lists both methods.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildNestExample, type BuiltApp } from './helpers/nest-app.js';
import { lockDir, ROOT, startArgv, type Finished } from './helpers/processes.js';

const JOBS = ['ReportsService.refresh', 'MailService.sendQueued']; // @Cron above @Exclusive, then below it
const LOCK = (job: string): string => `exclusive-process-nestjs-example/dist/reports.service:${job}`;

let built: BuiltApp | undefined;
const app = (): BuiltApp => (built ??= buildNestExample());

/** One line of JobLog: a run of `job` entered or left, in process `pid`, at `at` ms since the epoch. */
interface Event {
  readonly event: 'enter' | 'exit';
  readonly job: string;
  readonly pid: number;
  readonly at: number;
}

function events(stdout: string): Event[] {
  return [...stdout.matchAll(/^job-log: (enter|exit) (\S+) pid=(\d+) at=([\d.]+)$/gm)].map(([, event, job, pid, at]) => ({
    event: event as Event['event'],
    job,
    pid: Number(pid),
    at: Number(at),
  }));
}

/** The largest number of runs of `job` inside their body at once, over the events of every process sorted by time. */
function mostAtOnce(all: readonly Event[], job: string): number {
  let inside = 0;
  let most = 0;
  for (const { event } of all.filter((e) => e.job === job).sort((a, b) => a.at - b.at)) {
    inside += event === 'enter' ? 1 : -1;
    most = Math.max(most, inside);
  }
  return most;
}

/** How many runs of `job` entered in each second (a cron fire), over every process. */
function runsPerFire(all: readonly Event[], job: string): number[] {
  const perSecond = new Map<number, number>();
  for (const { at } of all.filter((e) => e.job === job && e.event === 'enter')) {
    const second = Math.floor(at / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  return [...perSecond.values()];
}

test('two replicas of the Nest app: each fire of either job runs in exactly one, never both at once; the other skips quietly', async (t) => {
  const { app: cwd, packageTsc, appTsc } = app();
  t.is(packageTsc, '');
  t.is(appTsc, '', 'the example compiles with tsc (experimentalDecorators, emitDecoratorMetadata)');
  const env = { EXCLUSIVE_PROCESS_DIR: lockDir(), EXAMPLE_RUN_MS: '5000', EXAMPLE_WORK_MS: '300', NODE_DEBUG: 'exclusive-process' };
  const replicas = [0, 1].map(() => startArgv([process.execPath, join('dist', 'main.js')], { cwd, env }));
  const ended: Finished[] = await Promise.all(replicas.map((replica) => replica.finished));
  for (const end of ended) {
    t.is(end.code, 0, end.stderr);
    t.regex(end.stdout, /^app: closed$/m);
    const nestOutput = `${end.stdout}\n${end.stderr.replace(/^EXCLUSIVE-PROCESS \d+: .*\n/gm, '')}`;
    t.false(/ERROR|CannotAcquireLock|Error:/.test(nestOutput), nestOutput);
  }
  const all = ended.flatMap((end) => events(end.stdout));
  const pids = replicas.map((replica) => replica.child.pid);
  for (const job of JOBS) {
    const fires = runsPerFire(all, job);
    t.true(fires.length >= 4, `${job} ran on ${fires.length} fires`);
    t.deepEqual(
      fires,
      fires.map(() => 1),
      `${job}: runs per fire`
    );
    t.is(mostAtOnce(all, job), 1, `${job} never ran in both replicas at once`);
    t.is(all.filter((e) => e.job === job && e.event === 'exit').length, fires.length, `${job}: every run ended`);
    t.true(all.every((e) => pids.includes(e.pid)));
    const skips = ended.map((end) => end.stderr.split(`skipped '${LOCK(job)}' (options.skip): held-elsewhere`).length - 1);
    t.true(skips[0] + skips[1] >= 3, `${job}: skipped ${skips.join(' + ')} times`);
  }
});

test('the discovery example lists every exclusive method with its lock name and options (DiscoveryService + EXCLUSIVE_METADATA)', async (t) => {
  const { app: cwd, appTsc } = app();
  t.is(appTsc, '');
  const listed = await startArgv([process.execPath, join('dist', 'discover.js')], { cwd, env: { EXCLUSIVE_PROCESS_DIR: lockDir() } })
    .finished;
  t.is(listed.code, 0, listed.stderr);
  t.is(listed.stdout, JOBS.map((job) => `${job}: ${JSON.stringify({ skip: true, name: LOCK(job) })}\n`).join(''));
});

test("the README's NestJS code is the tested example's", (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- excerpt: examples\/nestjs\/src\/reports.service.ts -->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  t.truthy(block);
  t.true(readFileSync(join(ROOT, 'examples', 'nestjs', 'src', 'reports.service.ts'), 'utf8').includes(block!));
});
