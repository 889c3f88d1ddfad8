import { basename } from 'node:path';
import type { ExclusiveOptions } from '../../src/index.js';

/**
 * The `driver` option a test process uses for a driver spec: a built-in
 * driver's name as is, or `redis:<flavour>:<leaseMs>:<url>` for a redis
 * driver (see redis-driver.ts), so that suites written for drivers by name
 * run on Redis too. The Redis clients load only for such a spec. A redis
 * driver's keys start with the name of the test's lock directory `dir`,
 * so that each test has its own locks there as it has its own directory.
 */
let madeRedis = false;

export async function driverOfSpec(spec: string, dir: string): Promise<ExclusiveOptions['driver']> {
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
