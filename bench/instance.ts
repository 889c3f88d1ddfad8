// Single-instance apps: how long a second instance waits from its conflict to
// the running instance's reply (a trivial handler), through forever() (which
// blocks: its first lock try, the holder read, a synchronous socket exchange)
// and through notify() (asynchronous).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { CannotAcquireLock, Exclusive } from '../src/index.js';
import { summarize, type Summary } from './stats.js';

export const INSTANCE_ROUNDS = 300;

export interface InstanceResult {
  readonly forever: Summary;
  readonly notify: Summary;
}

export async function conflictToReply(dir: string): Promise<InstanceResult> {
  const name = `bench-instance-${process.pid}`;
  const peer = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'instance-peer.ts'), dir, name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await once(peer.stdout, 'data');
    const forever: number[] = [];
    for (let i = 0; i < INSTANCE_ROUNDS; i++) {
      const started = process.hrtime.bigint();
      const reply = secondForever(name, dir, i);
      forever.push(Number(process.hrtime.bigint() - started));
      if (reply !== 'ok') throw new Error(`unexpected reply ${reply}`);
    }
    const notify: number[] = [];
    for (let i = 0; i < INSTANCE_ROUNDS; i++) {
      const started = process.hrtime.bigint();
      const reply = await Exclusive.notify(name, i, { dir });
      notify.push(Number(process.hrtime.bigint() - started));
      if (reply.message !== 'ok') throw new Error(`unexpected reply ${reply.message}`);
    }
    return { forever: summarize(forever), notify: summarize(notify) };
  } finally {
    peer.kill('SIGKILL');
  }
}

/** One second instance's forever() without `die`: the reply comes with the conflict. */
function secondForever(name: string, dir: string, data: number): string | undefined {
  try {
    Exclusive.forever({ name, dir, data });
  } catch (error) {
    if (error instanceof CannotAcquireLock) return error.reply?.message;
    throw error;
  }
  throw new Error('the bench process got the lock: the peer is not running');
}
