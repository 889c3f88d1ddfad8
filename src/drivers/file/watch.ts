import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Change notification for the shared wait loop (inotify on Linux, kqueue on
 * macOS): calls `onChange` when `path` changes, or, with `byName`, when a
 * file called like `path` appears or disappears in its directory (for
 * drivers whose lock file comes and goes). Returns a function that stops
 * watching, or undefined where watching is impossible (no such file yet,
 * no inotify, out of watches): the wait loop then polls faster, and tries
 * to watch again.
 */
export function watchLockFile(path: string, onChange: () => void, byName = false): (() => void) | undefined {
  const name = basename(path);
  try {
    const watcher = byName
      ? watch(dirname(path), { persistent: false }, (_event, file) => {
          if (file === null || file === name) onChange();
        })
      : watch(path, { persistent: false }, onChange);
    watcher.on('error', onChange);
    return () => watcher.close();
  } catch {
    return undefined;
  }
}
