import { truncateCommand } from '../shared/process-identity.js';

/*
 * The command line the tool records as the holder's: pid, start time and
 * host stay the tool's (it holds the lock), the command is what it runs.
 */

/** A command line for display: arguments that a shell would split or expand are single-quoted. */
export function displayCommand(argv: readonly string[]): string {
  const line = argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
  return truncateCommand(line);
}
