import { closeSync } from 'node:fs';
import { decodeRecord } from '../../shared/holder-record.js';
import { isRunning } from '../../shared/process-identity.js';
import { locateLockFile, lockFileError, readHead } from '../file/lock-file.js';
import { flockHolderRecord } from '../file/proc-locks.js';
import { portableHolderAt } from '../file/slot-claims.js';
import { LOCK_NB, LOCK_SH } from './files.js';
import type { Native } from '../../native/libc.js';
import type { HolderRecord } from '../types.js';

/**
 * The holder of the lock file `path`: its flock holder from /proc/locks
 * (else probed with a shared lock, and named by the file's record), or a
 * portable-driver process holding the name through its claim.
 */
export function flockHolder(flock: Native['flock'], path: string): HolderRecord | null {
  // Located, not read: another user's unreadable (0600) file still shows its flock holder in /proc/locks.
  const file = locateLockFile(path);
  if (file === undefined) return portableHolderAt(path);
  try {
    const holder = flockHolderRecord(file);
    if (holder !== undefined) return holder ?? portableHolderAt(path);
    if (!file.readable) throw lockFileError(Object.assign(new Error('not readable'), { code: 'EACCES' }), path);
    // No /proc/locks (not Linux): probe with a shared lock.
    if (flock(file.fd, LOCK_SH | LOCK_NB) === 0) return portableHolderAt(path);
    const record = decodeRecord(readHead(file.fd));
    return record !== null && record.pid !== null && isRunning(record.pid, record.start) ? record : { name: record?.name ?? '', pid: null };
  } finally {
    closeSync(file.fd); // also drops the probe's shared lock
  }
}
