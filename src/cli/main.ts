/**
 * The `exclusive` command: runs any command holding a named lock, in the
 * spirit of util-linux flock(1) but with names instead of paths, and the
 * library's drivers. See `exclusive --help` and the README. Started by
 * src/cli.ts; the build bundles it and what it imports into one module.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, UsageError } from './args.js';
import { EXIT, runCommand } from './run.js';
import { say } from './say.js';
import { sayError } from './messages.js';
import { HELP, TRY_HELP } from './usage.js';
import { ExclusiveProcessError } from '../shared/errors.js';

async function main(argv: readonly string[]): Promise<void> {
  const request = parseArgs(argv);
  switch (request.kind) {
    case 'help':
      process.stdout.write(HELP);
      return;
    case 'version':
      process.stdout.write(`${version()}\n`);
      return;
    case 'run':
      return runCommand(request);
    case 'status': {
      // Loaded only here: running a command, the common case, does not need it.
      const { collectStatus, emptyMessage, formatJson, formatTable } = require('./status.js') as typeof import('./status.js');
      const { driver, rows } = await collectStatus(request);
      const text = request.json
        ? formatJson(rows, request.name !== undefined)
        : rows.length === 0
          ? emptyMessage(request, driver)
          : formatTable(rows);
      // With a name, the exit code answers "is it held?" for scripts. Exit once
      // written: a server driver's idle sessions would keep us alive.
      const code = request.name !== undefined && rows[0].state === 'held' ? 1 : 0;
      process.stdout.write(text, () => process.exit(code));
      return;
    }
  }
}

function version(): string {
  // dist/cli/main.js and src/cli/main.ts both sit two levels below package.json.
  return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    say(`exclusive: ${error.message}\n${TRY_HELP}\n`);
    process.exit(EXIT.usage);
  }
  // Our own errors (LockFileError, LockDriverError...) have messages that name the fix; anything else
  // (Node's own errors too, though their codes also start with ERR_) gets its stack.
  if (error instanceof ExclusiveProcessError) sayError(error.message);
  else say(`exclusive: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(EXIT.failure);
});
