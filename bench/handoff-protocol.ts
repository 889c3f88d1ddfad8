/** Messages between bench/handoff.ts (the holder) and bench/handoff-peer.ts (the waiter). */

export type Waiter = 'exclusive-async' | 'exclusive-sync' | 'proper-lockfile-defaults' | 'proper-lockfile-tuned';

export type ToPeer = { kind: 'wait'; waiter: Waiter; name: string; dir: string; file: string } | { kind: 'exit' };

export type FromPeer =
  | { kind: 'ready' }
  /** t1: process.hrtime.bigint() when the acquisition resolved, as a decimal string. */
  | { kind: 'acquired'; t1: string };
