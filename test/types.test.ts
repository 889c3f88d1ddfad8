// The types refuse what the runtime refuses: tsc type-checks the decorator
// fixtures in both decorator modes. test/fixtures/decorators.ts must compile
// (every supported form), and each `@ts-expect-error` in
// test/fixtures/decorator-misuse.ts must meet an error (an unused one fails);
// test/fixtures/async-types.ts checks the result type of `async: true`.
import test from 'ava';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FIXTURES, ROOT } from './helpers/processes.js';

const exec = promisify(execFile);
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

for (const [mode, config] of [
  ['standard (TC39) decorators', 'tsconfig.standard.json'],
  ['experimentalDecorators', 'tsconfig.legacy.json'],
] as const) {
  test(`types, ${mode}: methods compile; getters, setters, fields, generator methods and generator functions do not`, async (t) => {
    const result = await exec(process.execPath, [TSC, '--noEmit', '-p', join(FIXTURES, config)]).then(
      ({ stdout }) => stdout,
      (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ''}${error.stderr ?? ''}`,
    );
    t.is(result, '');
  });
}
