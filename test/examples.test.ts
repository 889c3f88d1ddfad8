import test from 'ava';
import { join } from 'node:path';
import { lockDir, ROOT, run, start } from './helpers/processes.js';

// The examples, run as the README runs them (tsx, importing 'exclusive-process'),
// each with a private lock directory.
const example = (name: string): string => join(ROOT, 'examples', `${name}.ts`);

test('nightly-job: a second copy started while the first runs exits 1 with the message; the first finishes', async (t) => {
  // Long enough for the second copy to start under tsx on a loaded machine (3 s was not).
  const env = { EXCLUSIVE_PROCESS_DIR: lockDir(), EXAMPLE_WORK_MS: '15000' };
  const first = start(example('nightly-job'), [], env);
  await first.waitFor('running as pid');
  const second = await run(example('nightly-job'), [], env);
  t.is(second.code, 1);
  t.is(second.stderr, `Another 'exclusive-process/examples/nightly-job' process is already running (pid ${first.child.pid}).\n`);
  const done = await first.finished;
  t.is(done.code, 0);
  t.regex(done.stdout, /nightly job: done/);
  const third = await run(example('nightly-job'), [], { ...env, EXAMPLE_WORK_MS: '0' });
  t.is(third.code, 0, 'free again after the first exited');
});

test('service: the second concurrent build is refused, migrations queue', async (t) => {
  const result = await run(example('service'), [], { EXCLUSIVE_PROCESS_DIR: lockDir() });
  t.is(result.code, 0, result.stderr);
  // The holder is this example's own first call: its pid, command and start are its own.
  const [, pid, command, since] = /\(pid (\d+), `([^`]*)`, since (\S+)\)/.exec(result.stdout) ?? [];
  t.regex(String(command), /examples\/service\.ts$/);
  t.false(Number.isNaN(Date.parse(String(since))));
  t.is(
    result.stdout,
    [
      'report 1 built',
      `second build refused (held-in-process): The lock 'exclusive-process/examples/service:ReportService.build' is held by another call in this process (pid ${pid}, \`${command}\`, since ${since}). ` +
        'Pass `wait` to queue this call behind it, or do not start it again before that call ends.',
      'migration step 1 applied',
      'migration step 2 applied',
      'migration step 3 applied',
      '',
    ].join('\n')
  );
});

test('wrapped-function: calls run one after the other; the holder is this process, then nobody', async (t) => {
  const dir = lockDir();
  const result = await run(example('wrapped-function'), [], { EXCLUSIVE_PROCESS_DIR: dir });
  t.is(result.code, 0, result.stderr);
  const pid = String(result.stdout.match(/this process: (\d+)/)?.[1]);
  t.is(
    result.stdout,
    [
      `syncing warehouse A; holder pid ${pid} (this process: ${pid})`,
      `syncing warehouse B; holder pid ${pid} (this process: ${pid})`,
      'after: holder null',
      `held by hand: inventory-sync at ${dir}/exclusive-process.inventory-sync.lock`,
      '',
    ].join('\n')
  );
});

test('opentelemetry: each acquisition is a span under the active one: a success, a conflict (error status), a wait for another process', async (t) => {
  const dir = lockDir();
  const result = await run(example('opentelemetry'), [], { EXCLUSIVE_PROCESS_DIR: dir });
  t.is(result.code, 0, result.stderr);
  const spans = result.stdout
    .trim()
    .split('\n')
    .map(
      (line) =>
        JSON.parse(line) as { name: string; status: string; parent: string | null; spanId: string; attributes: Record<string, unknown> }
    );
  t.is(spans.length, 4, result.stdout);
  const [success, conflict, waited, root] = spans;
  t.like(root, { name: 'example', status: 'UNSET', parent: null });
  const name = 'exclusive-process acquire opentelemetry-example';
  const attributes = {
    'exclusive_process.lock_name': 'opentelemetry-example',
    'exclusive_process.driver': 'posix',
    'exclusive_process.mode': 'exclusive',
    'exclusive_process.lockfile': `${dir}/exclusive-process.opentelemetry-example.lock`,
    'exclusive_process.reentered': false,
  };
  const expected = [
    [success, 'OK', 0, 'acquired'],
    [conflict, 'ERROR', 0, 'held-elsewhere'],
    [waited, 'OK', 10_000, 'acquired'],
  ] as const;
  for (const [span, status, wait, outcome] of expected) {
    const { 'exclusive_process.waited_ms': waitedMs, ...rest } = span.attributes;
    t.like(span, { name, status, parent: root.spanId });
    t.deepEqual(rest, { ...attributes, 'exclusive_process.wait_ms': wait, 'exclusive_process.outcome': outcome });
    t.is(typeof waitedMs, 'number');
  }
  // The other process let go 200 ms after the wait began.
  t.true((waited.attributes['exclusive_process.waited_ms'] as number) >= 190, JSON.stringify(waited));
});

test('open-in-running-copy: a later copy hands its files to the running one, prints its answer and exits with its code', async (t) => {
  const env = { EXCLUSIVE_PROCESS_DIR: lockDir(), EXAMPLE_WORK_MS: '60000' };
  const first = start(example('open-in-running-copy'), ['a.txt'], env);
  t.teardown(() => first.child.kill('SIGKILL'));
  await first.waitFor('running as pid');
  const second = await run(example('open-in-running-copy'), ['b.txt', 'c.txt'], env);
  t.is(second.code, 0, second.stderr);
  t.is(second.stdout, `opened ${join(ROOT, 'b.txt')}, ${join(ROOT, 'c.txt')} in the running copy (pid ${first.child.pid})\n`);
  const empty = await run(example('open-in-running-copy'), [], env);
  t.is(empty.code, 2);
  t.is(empty.stdout, 'nothing to open\n');
  first.child.kill('SIGTERM');
  const done = await first.finished;
  t.is(
    done.stdout,
    [
      `open: ${join(ROOT, 'a.txt')}`,
      `running as pid ${first.child.pid}: start me again with more files`,
      `open: ${join(ROOT, 'b.txt')}`,
      `open: ${join(ROOT, 'c.txt')}`,
      '',
    ].join('\n')
  );
});
