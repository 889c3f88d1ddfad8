// The postgres section of `npm run bench`: the driver's costs over loopback
// against a private PostgreSQL 15 started for the run (test/helpers/postgres-server.ts).
import { Client } from 'pg';
import { Exclusive, exclusive } from '../src/index.js';
import { postgres } from '../src/drivers/postgres/index.js';
import { postgresInstalled, startPostgres } from '../test/helpers/postgres-server.js';

export interface PostgresBench {
  /** Why the section did not run (PostgreSQL 15 not installed); the numbers are then NaN. */
  skipped?: string;
  /** Median ms of one uncontended call of an `exclusive(async fn)` wrapper with the postgres driver (acquire + release, pooled session). */
  acquireReleaseMs: number;
  acquireReleaseP95Ms: number;
  /** Median ms of `pg_try_advisory_lock` + `pg_advisory_unlock` on a plain pg client: the floor (two round trips). */
  rawTryUnlockMs: number;
  /** Median ms from a holder's `release()` call to a waiting acquisition (another session) resolving. */
  handoffMs: number;
  handoffP95Ms: number;
  /** Median ms of a first acquisition + release on a new driver (connect + session setup included). */
  coldAcquireReleaseMs: number;
  /** The section as text, for bench/index.ts to print. */
  text: string;
}

const UNCONTENDED = 500;
const HANDOFFS = 100;
const COLD = 20;

function quantile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Starts a server, measures, stops it. About 5 s. */
export async function benchPostgres(): Promise<PostgresBench> {
  if (!postgresInstalled()) {
    const skipped = 'postgres: skipped (PostgreSQL 15 is not installed: apt-get install -y postgresql-15)';
    return {
      skipped,
      acquireReleaseMs: NaN,
      acquireReleaseP95Ms: NaN,
      rawTryUnlockMs: NaN,
      handoffMs: NaN,
      handoffP95Ms: NaN,
      coldAcquireReleaseMs: NaN,
      text: skipped,
    };
  }
  const server = await startPostgres({ fsync: true });
  try {
    const { connectionString } = server;

    // Uncontended, through the public API, as an application calls it.
    const driver = postgres({ connectionString });
    const job = exclusive(async () => {}, { name: 'bench-uncontended', driver });
    for (let i = 0; i < 50; i++) await job();
    const uncontended: number[] = [];
    for (let i = 0; i < UNCONTENDED; i++) {
      const t0 = performance.now();
      await job();
      uncontended.push(performance.now() - t0);
    }

    // The same call shared, and counted (limit 3): a family key, and a slot key, beside the name's key.
    const byMode: Record<'shared' | 'counted', number[]> = { shared: [], counted: [] };
    for (const mode of ['shared', 'counted'] as const) {
      const modeJob = exclusive(async () => {}, { name: `bench-${mode}`, driver, ...(mode === 'shared' ? { mode } : { limit: 3 }) });
      for (let i = 0; i < 50 + UNCONTENDED; i++) {
        const t0 = performance.now();
        await modeJob();
        if (i >= 50) byMode[mode].push(performance.now() - t0);
      }
    }

    // The floor: the same two round trips on a plain client.
    const client = new Client({ connectionString });
    client.on('error', () => {}); // a failure shows in the awaited queries
    await client.connect();
    const raw: number[] = [];
    for (let i = 0; i < 50 + UNCONTENDED; i++) {
      const t0 = performance.now();
      await client.query('SELECT pg_try_advisory_lock(42)');
      await client.query('SELECT pg_advisory_unlock(42)');
      if (i >= 50) raw.push(performance.now() - t0);
    }
    await client.end();

    // Hand-off: the waiter is queued on the server before the holder lets go.
    const holderDriver = postgres({ connectionString });
    const waiterDriver = postgres({ connectionString });
    const handoffs: number[] = [];
    const probe = new Client({ connectionString });
    probe.on('error', () => {});
    await probe.connect();
    for (let i = 0; i < 10 + HANDOFFS; i++) {
      const held = await Exclusive.acquire({ name: 'bench-handoff', driver: holderDriver });
      const waiting = Exclusive.acquire({ name: 'bench-handoff', driver: waiterDriver, wait: true });
      for (;;) {
        const { rows } = await probe.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
        if (rows[0].n > 0) break;
      }
      const t0 = performance.now();
      const releasing = held.release();
      const next = await waiting;
      const t1 = performance.now();
      await releasing;
      await next.release();
      if (i >= 10) handoffs.push(t1 - t0);
    }
    await probe.end();

    // Cold: a new driver (new connection and session setup) each time.
    const cold: number[] = [];
    for (let i = 0; i < COLD; i++) {
      const fresh = postgres({ connectionString });
      const t0 = performance.now();
      const lock = await Exclusive.acquire({ name: 'bench-cold', driver: fresh });
      await lock.release();
      cold.push(performance.now() - t0);
      fresh.cleanup?.();
    }
    for (const d of [driver, holderDriver, waiterDriver]) d.cleanup?.();

    const result = {
      acquireReleaseMs: quantile(uncontended, 0.5),
      acquireReleaseP95Ms: quantile(uncontended, 0.95),
      rawTryUnlockMs: quantile(raw, 0.5),
      handoffMs: quantile(handoffs, 0.5),
      handoffP95Ms: quantile(handoffs, 0.95),
      coldAcquireReleaseMs: quantile(cold, 0.5),
    };
    const f = (x: number): string => x.toFixed(3);
    const text = [
      '',
      `### postgres driver (PostgreSQL 15 on loopback TCP, private cluster, fsync on: each acquisition commits its fencing token durably)`,
      '',
      '| operation | median ms | p95 ms | samples |',
      '|---|---|---|---|',
      `| exclusive(async fn) call, uncontended (acquire + release, pooled session) | ${f(result.acquireReleaseMs)} | ${f(result.acquireReleaseP95Ms)} | ${UNCONTENDED} |`,
      `| the same, mode: 'shared' (3 round trips to acquire) | ${f(quantile(byMode.shared, 0.5))} | ${f(quantile(byMode.shared, 0.95))} | ${UNCONTENDED} |`,
      `| the same, limit: 3 (4 round trips to acquire) | ${f(quantile(byMode.counted, 0.5))} | ${f(quantile(byMode.counted, 0.95))} | ${UNCONTENDED} |`,
      `| raw pg_try_advisory_lock + pg_advisory_unlock on one pg client (floor) | ${f(result.rawTryUnlockMs)} | ${f(quantile(raw, 0.95))} | ${UNCONTENDED} |`,
      `| hand-off: holder's release() to the waiting session's acquisition | ${f(result.handoffMs)} | ${f(result.handoffP95Ms)} | ${HANDOFFS} |`,
      `| first acquire + release on a new driver (connect + session setup) | ${f(result.coldAcquireReleaseMs)} | ${f(quantile(cold, 0.95))} | ${COLD} |`,
    ].join('\n');
    return { ...result, text };
  } finally {
    await server.stop();
  }
}

if (require.main === module) {
  benchPostgres().then(
    (r) => console.log(r.text),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    }
  );
}
