import { buildSync } from 'esbuild';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { FIXTURES } from './processes.js';

/**
 * Bundles fixtures (with the library's source) into single CommonJS files in
 * a new world-readable temp dir, for tests that run them as another user:
 * the checkout itself may sit in a folder that user cannot read. The native
 * binding stays outside, so the bundles suit the portable driver. Returns the
 * directory; each fixture `x.ts` becomes `x.cjs` there.
 *
 * @example
 * ```ts
 * const dir = bundleForOtherUsers(['hold.ts']); // then: runuser -u nobody -- node <dir>/hold.cjs ...
 * ```
 */
export function bundleForOtherUsers(fixtures: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-bundle-'));
  chmodSync(dir, 0o755);
  for (const fixture of fixtures) {
    buildSync({
      entryPoints: [join(FIXTURES, fixture)],
      outfile: join(dir, `${basename(fixture, '.ts')}.cjs`),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      external: ['ffi-rs', 'pg'],
      logLevel: 'error',
    });
  }
  return dir;
}
