/*
 * The command line the tool records as the holder's: pid, start time and
 * host stay the tool's (it holds the lock), the command is what it runs.
 */

/** Same cap as the library's own record (see process-identity.ts). */
const MAX_COMMAND = 300;

/** A command line for display: arguments that a shell would split or expand are single-quoted. */
export function displayCommand(argv: readonly string[]): string {
  const line = argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
  return line.length > MAX_COMMAND ? `${line.slice(0, MAX_COMMAND - 1)}…` : line;
}
