// `npm run bench`: exclusive-process against proper-lockfile, measured side
// by side in one run and reported as ratios (absolute times on shared
// machines are not stable; ratios between peers measured together are
// steadier, though heavy I/O load slows proper-lockfile's mkdir/rmdir far
// more than our CPU-bound path, hence the load warning).
// Sections: uncontended acquire+release, hand-off latency, the CPU cost of
// waiting on many names, many locks and waiters in one process, the CLI's
// start-up against Node's own, a second instance's conflict-to-reply, then the optional ones (portable driver, postgres, redis)
// when they are available.
import { existsSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { crossProcessHandoffs, inProcessHandoff, LABELS, type HandoffResult } from './handoff.js';
import { ms, ratio, us } from './stats.js';
import { buildCli, measureStartup, STARTUP_RUNS } from './startup.js';
import { waitCosts } from './wait-cost.js';
import { conflictToReply, INSTANCE_ROUNDS } from './instance.js';
import { HELD_LOCKS, heldCost, WAITERS, waitersCost } from './scale.js';
import { allChecks, check, note, printTable } from './table.js';
import {
  exclusiveContenders,
  measure,
  modeContenders,
  portableContenders,
  properLockfileContenders,
  roundRatios,
  ROUNDS,
  type Measured,
} from './uncontended.js';

/** Names of the file systems a lock directory is likely to be on (statfs f_type). */
const FS_TYPES: Record<number, string> = {
  0xef53: 'ext4',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlayfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
};

async function main(): Promise<void> {
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-bench-'));
  try {
    const fsType = statfsSync(dir).type;
    console.log('## exclusive-process benchmark\n');
    console.log(
      `node ${process.version}, ${process.platform}-${process.arch}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`
    );
    const [load] = loadavg();
    if (load > cpus().length) {
      console.log(
        `WARNING: busy machine (load ${load.toFixed(1)} on ${cpus().length} CPUs): I/O contention inflates proper-lockfile's times, so ratios read high. Rerun on a quiet machine.`
      );
    }
    console.log(
      `lock dir ${dir} on ${FS_TYPES[fsType] ?? `fs type 0x${fsType.toString(16)}`}; ${['ffi-rs', 'proper-lockfile'].map((p) => `${p} ${version(p)}`).join(', ')}`
    );

    await uncontended(dir);
    await handoff(dir);
    await waitCost(dir);
    await scale(dir);
    cliStartup(dir);
    await singleInstance(dir);
    await postgres();
    await redisSection();

    console.log('\n### Targets\n');
    for (const c of allChecks()) console.log(`- ${c.line}`);
    console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The installed version of a dependency (the per-call cost of ffi-rs differs between versions). */
function version(name: string): string {
  return (require(`${name}/package.json`) as { version: string }).version;
}

async function uncontended(dir: string): Promise<void> {
  const portable = portableContenders(dir);
  const ours = exclusiveContenders(dir, undefined, 'posix');
  const modes = modeContenders(dir);
  const theirs = properLockfileContenders(dir);
  const results = await measure([...ours, ...modes, ...portable.contenders, ...theirs]);
  const [plSync, plAsync] = results.slice(-2);
  // Each of ours is compared with proper-lockfile's call of the same shape (sync with sync, async with async).
  const peerOf = (m: Measured): Measured | undefined =>
    m === plSync || m === plAsync ? undefined : m.label.includes(', async ') ? plAsync : plSync;
  const times = (x: number): string => `${x.toFixed(1)}x`;
  printTable(
    `Uncontended acquire + release, microseconds per operation (${ROUNDS} interleaved rounds)`,
    ['operation', 'median', 'p95', 'round medians', 'proper-lockfile slower by (per-round range)'],
    results.map((m) => {
      const peer = peerOf(m);
      const r = peer && roundRatios(m, peer);
      return [
        m.label,
        us(m.all.median),
        us(m.all.p95),
        `${us(Math.min(...m.roundMedians))}-${us(Math.max(...m.roundMedians))}`,
        r === undefined ? '(baseline)' : `${times(r.median)} (${times(r.min)}-${times(r.max)})`,
      ];
    })
  );
  if (portable.skipped.length > 0) note(`portable driver skipped: ${portable.skipped.join('; ')}`);
  console.log();
  for (const m of ours) {
    const measured = results.find((r) => r.label === m.label)!;
    const peer = peerOf(measured)!;
    const r = roundRatios(measured, peer);
    check(
      `uncontended ${m.label}`,
      r.median >= 10,
      `${times(r.median)} faster than ${peer.label} (median of per-round ratios, range ${times(r.min)}-${times(r.max)}; target >= 10x)`
    );
  }
  for (const m of modes) {
    const measured = results.find((r) => r.label === m.label)!;
    const exclusiveOne = results.find((r) => r.label === ours[m.label.includes(', async ') ? 1 : 0].label)!;
    console.log(
      `${m.label}: ${us(measured.all.median)} us, ${times(measured.all.median / exclusiveOne.all.median)} the exclusive one's cost; ` +
        `${times(roundRatios(measured, peerOf(measured)!).median)} faster than proper-lockfile (no target)`
    );
  }
  for (const m of portable.contenders) {
    const measured = results.find((r) => r.label === m.label)!;
    console.log(
      `${m.label}: ${times(roundRatios(measured, peerOf(measured)!).median)} faster than proper-lockfile (fallback driver: no target)`
    );
  }
}

async function handoff(dir: string): Promise<void> {
  const results: HandoffResult[] = [await inProcessHandoff(dir), ...(await crossProcessHandoffs(dir))];
  const tuned = results.find((r) => r.label === LABELS.properTuned)!;
  printTable(
    "Hand-off latency, milliseconds from the holder's release to the waiter's acquisition (hold 5-204 ms)",
    ['waiter', 'median', 'p95', 'max', 'rounds', 'proper-lockfile tuned slower by'],
    results.map((r) => [
      r.label,
      ms(r.summary.median),
      ms(r.summary.p95),
      ms(r.summary.max),
      String(r.summary.n),
      r === tuned ? '(baseline)' : r.label.startsWith('proper-lockfile') ? '' : ratio(tuned.summary.median, r.summary.median),
    ])
  );
  note(
    'proper-lockfile cannot wait for a release: `retries` polls. Its default is no retry at all; `retries: 10` uses the retry ' +
      "library's default timing (first retry after 1 s); the tuned setting retries after 1, 2, 4, 8, then every 10 ms."
  );
  console.log();
  for (const label of [LABELS.inProcess, LABELS.exclusiveAsync, LABELS.exclusiveSync]) {
    const r = results.find((x) => x.label === label)!;
    check(`hand-off ${label}`, r.summary.median < 2e6, `median ${ms(r.summary.median)} ms (target < 2 ms)`);
  }
}

async function waitCost(dir: string): Promise<void> {
  const results = await waitCosts(dir);
  printTable(
    'What waiting costs: CPU of a process whose `wait: true` waiters wait on locks another process holds (process.cpuUsage, steady state)',
    ['waiters', 'CPU ms per second', '% of one core', 'file watching'],
    results.map((r) => [
      r.label,
      r.cpuMsPerSecond.toFixed(2),
      `${(r.cpuMsPerSecond / 10).toFixed(2)} %`,
      r.watching ? 'yes' : 'NO (all polling)',
    ])
  );
  note(
    'Each distinct name waits on the OS (a watch on its lock file, and a slow poll for holders that die without a word); ' +
      'waiters of one name queue in-process behind one. Without file watching (inotify instances are limited per user) waits poll.'
  );
  console.log();
  for (const r of results) {
    if (!r.watching) continue;
    check(
      `waiting cost, ${r.label}`,
      r.cpuMsPerSecond < 20,
      `${(r.cpuMsPerSecond / 10).toFixed(2)} % of one core (target < 2 %, an idle process on a busy machine included)`
    );
  }
}

function cliStartup(dir: string): void {
  const { node, file, spawns, exclusive } = measureStartup(buildCli(), dir);
  const row = (label: string, s: typeof node): string[] => [
    label,
    ms(s.median),
    ms(s.p95),
    ms(s.min),
    `${(s.median / node.median).toFixed(2)}x`,
  ];
  printTable(
    `CLI start-up, milliseconds per run (${STARTUP_RUNS} alternating runs each)`,
    ['command', 'median', 'p95', 'min', 'x node -e 0'],
    [
      row('node -e 0', node),
      row('node empty.js', file),
      row('node spawns.js (starts sh and true, as the tool does)', spawns),
      row('exclusive NAME -- true (built CLI)', exclusive),
    ]
  );
  note(
    "`node -e 0` is Node's own start; an empty file adds Node's main-module set-up; spawns.js adds starting a guard shell and the command, which the tool must do. The rest is the tool's code and the lock."
  );
  console.log();
  const times = exclusive.median / node.median;
  check('CLI start-up', times <= 1.2, `${times.toFixed(2)}x the time of node -e 0 (medians; target <= 1.2x)`);
}

async function scale(dir: string): Promise<void> {
  const held = await heldCost(dir);
  printTable(
    `One process holding ${HELD_LOCKS.toLocaleString('en-US')} distinct locks at once (a fresh process; RSS after a GC)`,
    ['measure', 'total', 'per lock'],
    [
      ['RSS growth', `${(held.rssDelta / 2 ** 20).toFixed(1)} MiB`, `${(held.rssDelta / HELD_LOCKS / 1024).toFixed(2)} KiB`],
      ['open descriptors added', String(held.fdsDelta), (held.fdsDelta / HELD_LOCKS).toFixed(2)],
      ['descriptors left open once all are released', String(held.idleFdsAfterRelease), '(idle cache)'],
      [
        'acquire all, then release all',
        `${held.acquireMs.toFixed(0)} ms + ${held.releaseMs.toFixed(0)} ms`,
        `${((held.acquireMs * 1000) / HELD_LOCKS).toFixed(1)} us + ${((held.releaseMs * 1000) / HELD_LOCKS).toFixed(1)} us`,
      ],
    ]
  );
  note(
    'A held posix lock is an open descriptor (flock lives on it): a process holding N locks needs N descriptors (Node raises its soft limit to the hard one).'
  );

  const w = await waitersCost(dir);
  const cell = (l: { median: number; p95: number }): string => `${l.median.toFixed(3)} / ${l.p95.toFixed(3)}`;
  printTable(
    `${WAITERS} async waiters (\`wait: true\`) on one lock another process holds, in one process: that process's own I/O while they wait`,
    ['measure', 'no waiters', `${WAITERS} waiting`],
    [
      ['fs.stat latency, ms (median / p95)', cell(w.before.stat), cell(w.during.stat)],
      ["dns.lookup('localhost') latency, ms (median / p95)", cell(w.before.dns), cell(w.during.dns)],
      ['CPU while waiting, ms per second', '', w.cpuMsPerSecond.toFixed(2)],
    ]
  );
  note(
    'Waiters of one name queue in-process behind one OS-level waiter (a file watch plus a slow poll), which occupies no thread of the libuv pool: fs and dns calls keep their latency.'
  );
  console.log();
  check(
    `${WAITERS} waiters, fs.stat median`,
    w.during.stat.median < Math.max(2 * w.before.stat.median, w.before.stat.median + 0.5),
    `${w.during.stat.median.toFixed(3)} ms while waiting, ${w.before.stat.median.toFixed(3)} ms before (target: under twice, or +0.5 ms)`
  );
  check(
    `${WAITERS} waiters, CPU`,
    w.cpuMsPerSecond < 20,
    `${(w.cpuMsPerSecond / 10).toFixed(2)} % of one core while waiting (target < 2 %, an idle process on a busy machine included)`
  );
}

async function singleInstance(dir: string): Promise<void> {
  const { forever, notify } = await conflictToReply(dir);
  printTable(
    `Single-instance apps: milliseconds from a second instance's conflict to the running instance's reply (trivial handler, ${INSTANCE_ROUNDS} rounds each)`,
    ['second instance', 'median', 'p95', 'max'],
    [
      ['Exclusive.forever({ data }) (synchronous)', ms(forever.median), ms(forever.p95), ms(forever.max)],
      ['Exclusive.notify() (asynchronous)', ms(notify.median), ms(notify.p95), ms(notify.max)],
    ]
  );
  note(
    "forever(): the failed lock try, the holder's record, then a blocking Unix-socket exchange; notify(): the same exchange on the event loop."
  );
  console.log();
  check('conflict to reply', forever.median < 5e6, `forever() median ${ms(forever.median)} ms (target < 5 ms)`);
}

/** bench/postgres.ts (optional) starts its own server; its section comes back as `text` (or a string). */
async function postgres(): Promise<void> {
  const file = join(__dirname, 'postgres.ts');
  if (!existsSync(file)) {
    note('postgres: skipped (bench/postgres.ts is not there)');
    return;
  }
  const { benchPostgres } = require(file) as { benchPostgres?: () => unknown };
  if (typeof benchPostgres !== 'function') throw new Error('bench/postgres.ts does not export benchPostgres()');
  const output = await benchPostgres();
  const text = typeof output === 'string' ? output : (output as { text?: unknown } | undefined)?.text;
  if (typeof text === 'string') console.log(text);
}

/** bench/redis.ts starts its own redis-server: this driver beside redlock and redis-semaphore. */
async function redisSection(): Promise<void> {
  const { benchRedis } = require(join(__dirname, 'redis.ts')) as typeof import('./redis.js');
  console.log((await benchRedis()).text);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
