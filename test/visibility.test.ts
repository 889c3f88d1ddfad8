import test from 'ava';
import { join } from 'node:path';
import { FIXTURES, lockDir, ROOT, run } from './helpers/processes.js';

// Lock names a user can see before they conflict: exclusive(fn).lockName,
// Exclusive.run(fn) without options, and the NODE_DEBUG=exclusive-process log.
const NAME = 'exclusive-process/test/fixtures/visible-names';

test('exclusive(fn).lockName is the resolved (default or given) name, read-only; Exclusive.run(fn) takes no options', async (t) => {
  const dir = lockDir();
  const result = await run('visible-names.ts', [], { EXCLUSIVE_PROCESS_DIR: dir });
  t.is(result.code, 0, result.stderr);
  t.is(result.stderr, ''); // no debug output unless asked
  t.deepEqual(JSON.parse(result.stdout), {
    lockName: NAME,
    explicit: 'visible-names-explicit',
    writable: false,
    assigned: 'TypeError',
    unchanged: NAME,
    conflict: NAME, // the name the conflict reports is the one lockName told
    ran: { name: NAME, holder: true }, // run(fn): default name, held while fn runs
    named: 1,
  });
});

test('NODE_DEBUG=exclusive-process names each lock: where a default name came from, the directory and why, where it lives, attempts, acquisitions, conflicts, releases, exit cleanup', async (t) => {
  const dir = lockDir();
  const result = await run('visible-names.ts', [], { EXCLUSIVE_PROCESS_DIR: dir, NODE_DEBUG: 'exclusive-process' });
  t.is(result.code, 0, result.stderr);
  const lines = result.stderr.trim().split('\n');
  const pid = /^EXCLUSIVE-PROCESS (\d+): /.exec(lines[0] ?? '')?.[1];
  t.truthy(pid, result.stderr);
  const file = `${dir}/exclusive-process.${encodeURIComponent(NAME)}.lock`;
  t.deepEqual(
    lines.map((line) => line.replace(`EXCLUSIVE-PROCESS ${pid}: `, '')),
    [
      `name '${NAME}' resolved from file ${join(FIXTURES, 'visible-names.ts')} (exclusive())`,
      `lock directory ${dir}, from EXCLUSIVE_PROCESS_DIR`,
      `lock '${NAME}' is ${file} (posix driver)`,
      `acquiring '${NAME}'`,
      `trying '${NAME}' (attempt 1, first try)`,
      `acquiring '${NAME}'`,
      `acquired '${NAME}' (${file})`,
      `conflict on '${NAME}': held by pid ${pid}`,
      `released '${NAME}' (${file})`,
      `name '${NAME}' resolved from file ${join(FIXTURES, 'visible-names.ts')} (Exclusive.run())`,
      `lock '${NAME}' is ${file} (posix driver)`,
      `acquiring '${NAME}'`,
      `trying '${NAME}' (attempt 1, first try)`,
      `acquired '${NAME}' (${file})`,
      `released '${NAME}' (${file})`,
      `lock 'visible-names-explicit' is ${dir}/exclusive-process.visible-names-explicit.lock (posix driver)`,
      `acquiring 'visible-names-explicit'`,
      `trying 'visible-names-explicit' (attempt 1, first try)`,
      `acquired 'visible-names-explicit' (${dir}/exclusive-process.visible-names-explicit.lock)`,
      `released 'visible-names-explicit' (${dir}/exclusive-process.visible-names-explicit.lock)`,
      'exit: cleaning up the posix driver(s)',
    ]
  );
});

for (const [mode, env] of [
  ['standard (TC39) decorators', {}],
  ['experimentalDecorators', { TSX_TSCONFIG_PATH: join(ROOT, 'test', 'fixtures', 'tsconfig.legacy.json') }],
] as const) {
  test(`${mode}: NODE_DEBUG=exclusive-process tells the default name of a decorated method and the file it came from`, async (t) => {
    const dir = lockDir(); // also the default directory: other suites run this fixture at the same time
    const result = await run('decorators.ts', [dir], { ...env, NODE_DEBUG: 'exclusive-process', EXCLUSIVE_PROCESS_DIR: dir });
    t.is(result.code, 0, result.stderr);
    const line = (method: string): string =>
      `name 'exclusive-process/test/fixtures/decorators:Jobs.${method}' resolved from file ${join(FIXTURES, 'decorators.ts')} (@Exclusive)`;
    const logged = result.stderr.split('\n').map((l) => l.replace(/^EXCLUSIVE-PROCESS \d+: /, ''));
    for (const method of ['backup', 'bare', 'make', 'later'])
      t.true(logged.includes(line(method)), `${line(method)}\n---\n${result.stderr}`);
    t.true(
      logged.includes(
        "conflict on 'exclusive-process/test/fixtures/decorators:Jobs.later': held by pid " +
          String(/^EXCLUSIVE-PROCESS (\d+)/.exec(result.stderr)?.[1])
      ),
      result.stderr
    );
  });
}
