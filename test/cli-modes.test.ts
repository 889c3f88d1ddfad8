// The `exclusive` command with shared (-s) and counted (--limit) locks, and `status` showing every holder.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, lockDir, start, type Started } from './helpers/processes.js';

const CLI = join(ROOT, 'src', 'cli.ts');

function exclusive(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
}

/** `exclusive <args> -- sh -c 'echo in; exec sleep 300'`, started; resolves once its command runs. */
async function holding(args: string[]): Promise<Started> {
  const started = start(CLI, [...args, '--', 'sh', '-c', 'echo in; exec sleep 300']);
  await started.waitFor('in');
  return started;
}

test.serial(
  'exclusive -s: shared holders run together, an exclusive run is refused with the holder, status lists both with their mode',
  async (t) => {
    const dir = lockDir();
    const readers = [await holding(['-s', '--dir', dir, 'db']), await holding(['--shared', '--dir', dir, 'db'])];
    t.teardown(() => readers.forEach((reader) => reader.child.kill('SIGKILL')));
    const pids = readers.map((reader) => reader.child.pid!).sort();

    const refused = exclusive(['--dir', dir, 'db', '--', 'true']);
    t.is(refused.status, 1);
    t.regex(refused.stderr, new RegExp(`^exclusive: Another 'db' process is already running \\(pid (${pids.join('|')})\\)\\.\\n$`));

    const json = exclusive(['status', '--dir', dir, 'db', '--json']);
    t.is(json.status, 1, json.stderr);
    const row = JSON.parse(json.stdout) as { state: string; mode: string; holders: Array<{ pid: number; mode: string; command: string }> };
    t.is(row.state, 'held');
    t.is(row.mode, 'shared');
    t.deepEqual(row.holders.map((holder) => holder.pid).sort(), pids);
    t.deepEqual(
      row.holders.map((holder) => [holder.mode, holder.command]),
      [
        ['shared', "sh -c 'echo in; exec sleep 300'"],
        ['shared', "sh -c 'echo in; exec sleep 300'"],
      ]
    );
    const table = exclusive(['status', '--dir', dir]);
    t.deepEqual(
      table.stdout
        .split('\n')
        .slice(1, -1)
        .map((line) => line.split(/\s+/))
        .map((cells) => [cells[0], cells[1], cells[5]]),
      [
        ['db', 'held', 'shared'],
        ['db', 'held', 'shared'],
      ]
    );
    t.regex(table.stdout, /^NAME +STATE +PID +HOST +SINCE +MODE +COMMAND\n/);
  }
);

test.serial('exclusive --limit 2: two run at once, the third is told all slots are taken; status shows the slots', async (t) => {
  const dir = lockDir();
  const holders = [await holding(['--limit', '2', '--dir', dir, 'encode']), await holding(['--limit=2', '--dir', dir, 'encode'])];
  t.teardown(() => holders.forEach((holder) => holder.child.kill('SIGKILL')));
  const pids = holders.map((holder) => holder.child.pid!).sort((a, b) => a - b);

  const third = exclusive(['--limit', '2', '--dir', dir, 'encode', '--', 'true']);
  t.is(third.status, 1);
  t.is(third.stderr, `exclusive: All 2 'encode' slots are taken (pids ${pids.join(', ')}).\n`);
  const mismatched = exclusive(['--limit', '3', '--dir', dir, 'encode', '--', 'true']);
  t.is(mismatched.status, 125);
  t.regex(mismatched.stderr, /is held counted \(limit 2\) and this call asked for it counted \(limit 3\)/);

  const json = JSON.parse(exclusive(['status', '--dir', dir, 'encode', '--json']).stdout) as {
    mode: string;
    holders: Array<{ pid: number; slot: number; limit: number }>;
  };
  t.is(json.mode, 'exclusive');
  t.deepEqual(
    json.holders.map(({ slot, limit }) => ({ slot, limit })),
    [
      { slot: 0, limit: 2 },
      { slot: 1, limit: 2 },
    ]
  );
  const modes = exclusive(['status', '--dir', dir])
    .stdout.split('\n')
    .slice(1, -1)
    .map((line) => line.split(/\s+/)[6]);
  t.deepEqual(modes, ['1/2', '2/2']); // "slot 1/2": the MODE column's second word

  holders[0].child.kill('SIGKILL');
  await holders[0].finished;
  const next = exclusive(['--limit', '2', '--dir', dir, 'encode', '--', 'true']);
  t.is(next.status, 0, next.stderr);
});

test.serial(
  'exclusive -s against a counted name is refused with ERR_LOCK_MISMATCH and leaves no gate file of its own behind',
  async (t) => {
    const dir = lockDir();
    const holder = start('modes.ts', ['slot', dir, 'posix', join(dir, 'log'), '2']); // a library process holding slot 0 of 2
    t.teardown(() => holder.child.kill('SIGKILL'));
    await holder.waitFor('held');
    const refused = exclusive(['-s', '--dir', dir, 'encode', '--', 'true']);
    t.is(refused.status, 0, 'another name is free');
    const mismatched = exclusive(['-s', '--dir', dir, 'modes', '--', 'true']);
    const state = () =>
      `holder running: ${holder.child.exitCode === null}; status: ${exclusive(['status', '--dir', dir, '--json']).stdout}`;
    t.is(mismatched.status, 125, `${mismatched.stderr}; ${state()}`);
    t.regex(mismatched.stderr, /is held counted \(limit 2\) and this call asked for it shared/);
    t.deepEqual(
      readdirSync(dir).filter((file) => file.endsWith('.gate')),
      [],
      'the refused request removed the gate file it created'
    );
  }
);

test('exclusive: -s with --limit, and a bad --limit, are usage errors; status refuses them', (t) => {
  for (const [args, message] of [
    [
      ['-s', '--limit', '2', 'x', '--', 'true'],
      "exclusive: options '-s' and '--limit' do not go together: shared holders are not counted\n",
    ],
    [['--limit', '0', 'x', '--', 'true'], 'exclusive: option \'--limit\' needs a whole number of holders from 1 to 64, got "0"\n'],
    [['--limit', '65', 'x', '--', 'true'], 'exclusive: option \'--limit\' needs a whole number of holders from 1 to 64, got "65"\n'],
  ] as const) {
    const result = exclusive([...args]);
    t.is(result.status, 2, args.join(' '));
    t.true(result.stderr.startsWith(message), result.stderr);
  }
  t.is(exclusive(['status', '-s']).status, 2);
});

test('exclusive -s or --limit through postgres at a server that does not answer exits 125 saying so, and runs nothing', (t) => {
  for (const option of [['-s'], ['--limit', '2']]) {
    const result = exclusive([
      ...option,
      '--driver',
      'postgres',
      '--database-url',
      'postgres://127.0.0.1:1/none',
      'x',
      '--',
      'sh',
      '-c',
      'echo ran',
    ]);
    t.is(result.status, 125, option.join(' '));
    t.is(result.stdout, '');
    t.regex(result.stderr, /^exclusive: Cannot connect to PostgreSQL at 127\.0\.0\.1:1\/none: connect ECONNREFUSED/);
  }
});
