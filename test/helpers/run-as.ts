import { existsSync } from 'node:fs';

// runuser lives in sbin, which a minimal PATH (cron, some CI runners) leaves out.
const RUNUSER = ['/usr/sbin/runuser', '/sbin/runuser'].find((file) => existsSync(file)) ?? 'runuser';

/** The command and arguments that run `argv` as `user` (the caller must be root). */
export function asUser(user: string, argv: readonly string[]): [string, string[]] {
  return [RUNUSER, ['-u', user, '--', ...argv]];
}
