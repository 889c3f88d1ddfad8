import type { InstanceReply } from '../shared/errors.js';

/**
 * The wire format between a second instance and the running one: one line
 * of JSON each way per step (JSON.stringify never writes a raw newline), at
 * most MAX_FRAME_BYTES each. See docs/internals/single-instance.md.
 *
 *   second -> first: {"v":1,"argv":[...],"cwd":"...","pid":123,"data":...}
 *   first -> second: {"accepted":true}         (sent before the handler runs)
 *   first -> second: {"exitCode":0,"message":"..."}   (the handler's reply)
 *   or, instead of both, for a request it refuses: {"refused":"why"}
 */

/** The longest line either side sends or reads, newline included: 1 MiB. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * What a second instance tells the running one, as `onSecondInstance` gets it.
 *
 * @example
 * ```ts
 * const message: SecondInstance = { argv: ['node', 'app.js', 'a.txt'], cwd: '/home/ann', pid: 4242, data: { file: 'a.txt' } };
 * ```
 */
export interface SecondInstance {
  /** The second instance's whole `process.argv` (Node's path and the script first, as Electron gives it). */
  readonly argv: readonly string[];
  /** Its working directory. */
  readonly cwd: string;
  /** Its process id. */
  readonly pid: number;
  /** The `data` it passed (any JSON value), or undefined. */
  readonly data?: unknown;
}

/** A line of JSON, newline-terminated. */
export function frame(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value)}\n`, 'utf8');
}

/** The request line of this process, with its argv, cwd and pid. `data` must be JSON (checked by the caller). */
export function requestFrame(data: unknown): Buffer {
  return frame({ v: 1, argv: process.argv, cwd: process.cwd(), pid: process.pid, data });
}

/** The first line of `buffered`, or undefined while it has none; throws a RangeError past MAX_FRAME_BYTES. */
export function firstLine(buffered: Buffer): { line: string; rest: Buffer } | undefined {
  const end = buffered.indexOf(0x0a);
  if (end < 0) {
    if (buffered.length >= MAX_FRAME_BYTES) throw new RangeError(`more than ${MAX_FRAME_BYTES} bytes without a newline`);
    return undefined;
  }
  if (end + 1 > MAX_FRAME_BYTES) throw new RangeError(`a line of more than ${MAX_FRAME_BYTES} bytes`);
  return { line: buffered.subarray(0, end).toString('utf8'), rest: buffered.subarray(end + 1) };
}

/** The request in `line`, or a string saying what is wrong with it. */
export function parseRequest(line: string): SecondInstance | string {
  const r = parseObject(line);
  if (r === undefined) return 'not a JSON object';
  if (r.v !== 1) return 'unknown protocol version';
  if (!Array.isArray(r.argv) || !r.argv.every((a) => typeof a === 'string')) return 'argv must be an array of strings';
  if (typeof r.cwd !== 'string') return 'cwd must be a string';
  if (!Number.isSafeInteger(r.pid) || (r.pid as number) < 1) return 'pid must be a positive integer';
  return { argv: r.argv, cwd: r.cwd, pid: r.pid as number, ...(r.data !== undefined && { data: r.data }) };
}

/** What a reply line says: accepted, a reply, a refusal, or garbage (undefined). */
export type ServerLine = { kind: 'accepted' } | { kind: 'reply'; reply: InstanceReply } | { kind: 'refused'; why: string };

/** Reads one line of the running instance's; undefined for anything that is not one of its lines. */
export function parseServerLine(line: string): ServerLine | undefined {
  const r = parseObject(line);
  if (r === undefined) return undefined;
  if (r.accepted === true) return { kind: 'accepted' };
  if (typeof r.refused === 'string') return { kind: 'refused', why: r.refused };
  if (!isExitCode(r.exitCode) || (r.message !== undefined && typeof r.message !== 'string')) return undefined;
  return {
    kind: 'reply',
    reply: { exitCode: r.exitCode, ...(r.message !== undefined && { message: r.message }), ...(r.failed === true && { failed: true }) },
  };
}

/** An exit code a process can end with. */
export function isExitCode(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 255;
}

function parseObject(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
