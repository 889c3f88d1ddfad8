import type { HolderRecord, LockDriver } from '../drivers/types.js';

/**
 * The tool holds the lock, but the holder record should name what it runs:
 * `status` and conflict reports then show `pg_dump -Fc db`, not
 * `node exclusive ...`. The shared lock code builds the record from this
 * process's own command line, so we wrap the driver and replace the
 * `command` field on its way down; pid, start time and host stay the tool's
 * (the tool is the process that holds the lock).
 */

/** Same cap as the library's own record (see process-identity.ts). */
const MAX_COMMAND = 300;

/** A command line for display: arguments that a shell would split or expand are single-quoted. */
export function displayCommand(argv: readonly string[]): string {
  const line = argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
  return line.length > MAX_COMMAND ? `${line.slice(0, MAX_COMMAND - 1)}…` : line;
}

/** `driver`, recording `command` as the holder's command line. Optional methods stay optional (the shared code checks for them). */
export function withCommand(driver: LockDriver, command: string): LockDriver {
  const stamp = (record: HolderRecord): HolderRecord => ({ ...record, command });
  const wrapped: LockDriver = {
    kind: driver.kind,
    synchronous: driver.synchronous,
    locate: (name, dir) => driver.locate(name, dir),
    tryLock: (resource, record) => driver.tryLock(resource, stamp(record)),
    holder: (resource) => driver.holder(resource),
  };
  if (driver.waitLock) wrapped.waitLock = (resource, record, signal) => driver.waitLock!(resource, stamp(record), signal);
  if (driver.watch) wrapped.watch = (resource, onChange) => driver.watch!(resource, onChange);
  if (driver.list) wrapped.list = (dir) => driver.list!(dir);
  if (driver.cleanup) wrapped.cleanup = () => driver.cleanup!();
  return wrapped;
}
