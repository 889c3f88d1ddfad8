// Single-instance apps on Windows (named pipes), for real under Wine: Windows
// node.exe processes, run by test/drivers/windows/run.sh against the built library.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const require = createRequire(import.meta.url);
const { Exclusive, InstanceError } = require('../dist/index.js');

const APP = join(import.meta.dirname, 'fixtures', 'instance-app.cjs');
const OUT = mkdtempSync(join(process.env.EXCLUSIVE_WINE_OUT || tmpdir(), 'instance-'));
const children = new Set();
let serial = 0;
after(() => {
  for (const child of children) child.kill();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (label) => `${label}-${process.pid}-${++serial}`;

/** Starts the app as a Windows process; stdout and stderr go to files (Windows node cannot write to a Linux pipe). */
function app(name, tag) {
  const id = ++serial;
  const out = join(OUT, `app-${id}.out`);
  const err = join(OUT, `app-${id}.err`);
  const [stdout, stderr] = [openSync(out, 'w'), openSync(err, 'w')];
  const proc = spawn(process.execPath, [APP, name, tag], { stdio: ['ignore', stdout, stderr] });
  closeSync(stdout);
  closeSync(stderr);
  children.add(proc);
  const exited = new Promise((resolve) => proc.on('exit', (code) => (children.delete(proc), resolve(code))));
  const read = (file) => readFileSync(file, 'utf8').replace(/\r/g, '');
  return { proc, exited, stdout: () => read(out), stderr: () => read(err) };
}

async function until(check, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function first(name) {
  const a = app(name, 'A');
  await until(() => a.stdout().includes('first A\n'), 'the first instance');
  return a;
}

const arrivals = (stdout) => [...stdout.matchAll(/^got (\S+)$/gm)].map((m) => m[1]).sort();

test('named pipe: 6 second instances at once each deliver exactly once, print the reply and exit with its code', async () => {
  const name = unique('six');
  const a = await first(name);
  const seconds = Array.from({ length: 6 }, (_, i) => app(name, `s${i}`));
  const codes = await Promise.all(seconds.map((s) => s.exited));
  seconds.forEach((s, i) => {
    assert.equal(codes[i], 3, s.stderr());
    assert.equal(s.stdout(), `delivered s${i} to A\n`);
  });
  assert.deepEqual(arrivals(a.stdout()), Array.from({ length: 6 }, (_, i) => `s${i}`).sort());
  a.proc.kill();
  await a.exited;
});

test('named pipe: a throwing handler gives exit 1 and its message on stderr; notify() gets replies, times out on a hung handler', async () => {
  const name = unique('errors');
  const a = await first(name);
  const thrower = app(name, 'throw1');
  assert.equal(await thrower.exited, 1);
  assert.equal(thrower.stderr(), 'onSecondInstance failed: cannot open throw1\n');
  assert.deepEqual(await Exclusive.notify(name, { tag: 'n1' }), { exitCode: 3, message: 'delivered n1 to A' });
  await assert.rejects(
    Exclusive.notify(name, { tag: 'hang1' }, { timeout: 500 }),
    (e) => e instanceof InstanceError && e.code === 'ERR_INSTANCE_TIMEOUT'
  );
  assert.deepEqual(await Exclusive.notify(name, { tag: 'n2' }), { exitCode: 3, message: 'delivered n2 to A' });
  a.proc.kill();
  await a.exited;
});

test('named pipe: with the first gone, notify() says ERR_NO_INSTANCE and the next copy becomes the first', async () => {
  const name = unique('gone');
  const a = await first(name);
  a.proc.kill();
  await a.exited;
  await assert.rejects(Exclusive.notify(name, { tag: 'n' }), (e) => e instanceof InstanceError && e.code === 'ERR_NO_INSTANCE');
  const b = app(name, 'B');
  await until(() => b.stdout().includes('first B\n'), 'the new first');
  const c = app(name, 'C');
  assert.equal(await c.exited, 3, c.stderr());
  assert.equal(c.stdout(), 'delivered C to B\n');
  b.proc.kill();
  await b.exited;
});
