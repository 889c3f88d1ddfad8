import { isRunning } from '../../shared/process-identity.js';
import { ERROR_FILE_NOT_FOUND } from '../../native/kernel32.js';
import { readInfo } from './info-file.js';
import { mutexHeld } from './mutex.js';
import { infoPath, type DriverState } from './state.js';
import type { HolderRecord } from '../types.js';

/**
 * The holder of the mutex `mutexName` (a lock's, or one slot of a shared or
 * counted lock) with the record of its info file, or null when free.
 */
export function mutexHolder(state: DriverState, mutexName: string, name: string): HolderRecord | null {
  const { k } = state;
  const info = infoPath(state, mutexName);
  const unknown = (record: HolderRecord | null): HolderRecord => ({ name: record?.name ?? name, pid: null });
  const live = (record: HolderRecord | null): HolderRecord | null =>
    record !== null && record.pid !== null && isRunning(record.pid, record.start) ? record : null;
  if (state.handles.get(mutexName)?.held || state.waiterHeld.has(mutexName))
    return readInfo(info) ?? { ...unknown(null), pid: process.pid };
  const opened = k.openMutex(mutexName);
  if (opened.handle === 0) {
    if (opened.error === ERROR_FILE_NOT_FOUND) return null; // no process has it open, so nobody holds it
    return live(readInfo(info)); // another user's mutex: we may not look at it, so trust a live record
  }
  let held: boolean;
  try {
    held = mutexHeld(k, opened.handle);
  } finally {
    k.closeHandle(opened.handle);
  }
  if (!held) return null;
  const record = readInfo(info);
  return live(record) ?? unknown(record);
}
