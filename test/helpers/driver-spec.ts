import { basename } from 'node:path';
import type { ExclusiveOptions, LockDriver } from '../../src/index.js';

/**
 * The `driver` option a test process uses for a driver spec: a built-in
 * driver's name as is, a `postgres://` connection string for a postgres
 * driver (one per string in a process), or `redis:<flavour>:<leaseMs>:<url>`
 * for a redis driver (see redis-driver.ts), so that suites written for
 * drivers by name run on the servers too. The Redis clients load only for such a spec. A redis
 * driver's keys start with the name of the test's lock directory `dir`,
 * so that each test has its own locks there as it has its own directory.
 */
let madeRedis = false;
const postgresDrivers = new Map<string, LockDriver>();

export async function driverOfSpec(spec: string, dir: string): Promise<ExclusiveOptions['driver']> {
  if (/^postgres(ql)?:/.test(spec)) return postgresOfSpec(spec);
  if (!spec.startsWith('redis:')) return spec as ExclusiveOptions['driver'];
  madeRedis = true;
  const [, flavour, lease, ...url] = spec.split(':');
  const { redisDriver } = await import('./redis-driver.js');
  return redisDriver(flavour, url.join(':'), { lease: Number(lease), prefix: `exclusive-process:${basename(dir)}:` });
}

/** Closes the clients of the redis drivers driverOfSpec() made, so that the process can end. */
export async function closeSpecDrivers(): Promise<void> {
  if (!madeRedis) return;
  const { closeRedisClients } = await import('./redis-driver.js');
  closeRedisClients();
}

async function postgresOfSpec(connectionString: string): Promise<LockDriver> {
  const { postgres } = await import('../../src/postgres.js');
  let driver = postgresDrivers.get(connectionString);
  if (driver === undefined) postgresDrivers.set(connectionString, (driver = postgres({ connectionString })));
  return driver;
}
