// procStat(): the one parser of /proc/<pid>/stat, on real processes.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { procStat } from '../src/shared/process-identity.js';

const linux = process.platform === 'linux' ? test : test.skip;

linux('procStat reads the state and start time past a command name holding ") Z (", and sees a zombie as Z', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'exclusive-proc-stat-'));
  // A program whose name (field 2 of stat) looks like the end of that field and a zombie's state.
  const program = join(dir, 'x) Z (y');
  copyFileSync('/bin/sleep', program);
  const { parent, zombie } = await programWithZombie(program);
  t.teardown(() => {
    parent.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const stat = procStat(parent.pid!)!;
  t.regex(stat.state, /^[RS]$/, 'the program sleeps (a parser splitting on spaces reads Z from its name)');
  t.regex(stat.start, /^\d+$/);
  t.true(Number(stat.start) >= Number(procStat(process.pid)!.start), 'started after this process');
  t.is(procStat(zombie)!.state, 'Z');

  parent.kill('SIGKILL');
  await new Promise((resolve) => parent.once('exit', resolve));
  // Gone (reaped by this process): nothing to read. Its zombie child is left
  // to whoever adopts it: a container's pid 1 may never reap it, so it is not waited for.
  t.is(procStat(parent.pid!), undefined);
});

test('procStat of a pid that does not exist is undefined', (t) => {
  t.is(procStat(0x7ffffffe), undefined);
});

/**
 * A running `program` (sleeping) whose child is a zombie: a shell starts
 * `sleep 0.2` in the background, then becomes `program`, which never reaps
 * it. Started again when the shell reaped the child before its exec (a
 * loaded machine): waiting for that zombie would hang.
 */
async function programWithZombie(program: string): Promise<{ parent: ChildProcess; zombie: number }> {
  for (let attempt = 1; ; attempt++) {
    const parent = spawn('/bin/sh', ['-c', `/bin/sleep 0.2 & echo $!; exec '${program}' 30`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
    const named = (): boolean => procStat(parent.pid!) !== undefined && /^x\) Z \(y/.test(readComm(parent.pid!));
    while (!named() && procStat(parent.pid!) !== undefined) await new Promise((resolve) => setTimeout(resolve, 20));
    while (procStat(zombie) !== undefined && procStat(zombie)!.state !== 'Z') await new Promise((resolve) => setTimeout(resolve, 20));
    if (named() && procStat(zombie)?.state === 'Z') return { parent, zombie };
    parent.kill('SIGKILL');
    if (attempt === 5) throw new Error(`no zombie child after ${attempt} attempts (the shell reaped it, or the program did not start)`);
    await new Promise((resolve) => parent.once('exit', resolve));
  }
}

function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1');
  } catch {
    return '';
  }
}
