import { lstatSync, mkdirSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Turns on Node's on-disk compile cache (V8 code cache) for the modules the
 * `exclusive` command loads after this one, where the running Node has it
 * (`module.enableCompileCache`, Node >= 22.1; not on Node 20): later runs
 * skip compiling them. The cache is only an optimisation: nothing here may
 * fail the tool, and Node honours `NODE_DISABLE_COMPILE_CACHE=1`.
 */
const enable = (nodeModule as { enableCompileCache?: (directory?: string) => unknown }).enableCompileCache;
if (typeof enable === 'function') {
  try {
    const directory = cacheDirectory();
    if (directory !== null) enable(directory);
  } catch {
    // no cache, same behaviour
  }
}

/**
 * Where the cache goes: `NODE_COMPILE_CACHE` when set (undefined: Node's
 * choice; also on Windows, whose temp directory is per user). Otherwise not
 * Node's default, `os.tmpdir()/node-compile-cache`: one directory for every
 * user, which the first to create it owns, so another user could plant code
 * there for root's cron jobs to run. Ours is per user, and used only when it
 * is a real directory that we own and nobody else can write (null: no cache).
 */
function cacheDirectory(): string | undefined | null {
  if (process.env.NODE_COMPILE_CACHE !== undefined || process.getuid === undefined) return undefined;
  const uid = process.getuid();
  const directory = join(tmpdir(), `exclusive-process-compile-cache-${uid}`);
  try {
    mkdirSync(directory, { mode: 0o700 });
  } catch {
    // already there (checked below), or cannot be made (lstat throws)
  }
  const stat = lstatSync(directory);
  return stat.isDirectory() && stat.uid === uid && (stat.mode & 0o077) === 0 ? directory : null;
}
