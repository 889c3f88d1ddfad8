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
  return byName ? watchDirectory(path, (file) => file === name, onChange) : watchPath(path, onChange);
}

/**
 * Like {@link watchLockFile} by name, for every file of the directory of
 * `path` whose name starts with `prefix`, except temp files (`.tmp`, written
 * before a claim appears): the claims of a name that come and go together.
 */
export function watchLockFiles(path: string, prefix: string, onChange: () => void): (() => void) | undefined {
  return watchDirectory(path, (file) => file.startsWith(prefix) && !file.endsWith('.tmp'), onChange);
}

function watchDirectory(path: string, matches: (file: string) => boolean, onChange: () => void): (() => void) | undefined {
  try {
    const watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      if (file === null || matches(file)) onChange();
    });
    watcher.on('error', onChange);
    return () => watcher.close();
  } catch {
    return undefined;
  }
}

function watchPath(path: string, onChange: () => void): (() => void) | undefined {
  try {
    const watcher = watch(path, { persistent: false }, onChange);
    watcher.on('error', onChange);
    return () => watcher.close();
  } catch {
    return undefined;
  }
}
