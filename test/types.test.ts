// The types refuse what the runtime refuses: tsc type-checks the decorator
// fixtures in both decorator modes. test/fixtures/decorators.ts must compile
// (every supported form), and each `@ts-expect-error` in
// test/fixtures/decorator-misuse.ts must meet an error (an unused one fails).
// Likewise test/fixtures/api-types.ts for the rest of the API: drivers that
// cannot lock synchronously, holder()'s promise, run(fn), lockName; and
// test/fixtures/async-types.ts checks the result type of `async: true`.
import test from 'ava';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FIXTURES, ROOT } from './helpers/processes.js';

const exec = promisify(execFile);
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** tsc's complaints about the project `config` in test/fixtures ('' when it type-checks). */
function typeCheck(config: string): Promise<string> {
  return exec(process.execPath, [TSC, '--noEmit', '-p', join(FIXTURES, config)]).then(
    ({ stdout }) => stdout,
    (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ''}${error.stderr ?? ''}`
  );
}

for (const [mode, config] of [
  ['standard (TC39) decorators', 'tsconfig.standard.json'],
  ['experimentalDecorators', 'tsconfig.legacy.json'],
] as const) {
  test(`types, ${mode}: methods compile; getters, setters, fields, generator methods and generator functions do not`, async (t) => {
    t.is(await typeCheck(config), '');
  });
}

test('types: lock() and forever() refuse an asynchronous driver (postgres); holder() is a promise only for one; run(fn) compiles; lockName is read-only', async (t) => {
  t.is(await typeCheck('tsconfig.api.json'), '');
});
