/**
 * Sends `signal` to this process, whose action for it must be the default
 * now, and blocks until it ends the process, for at most `maxMs`. Node and
 * Bun end at once, before `kill()` returns. Deno does not: once a listener
 * was ever added for a signal it keeps its own handler installed, and ends
 * the process from another thread a moment later, so returning at once would
 * run on JavaScript that believes it still holds its locks, or exit with a
 * code instead of the signal. Returns only if the signal did not end the
 * process in time (then the caller exits).
 */
export function raiseSignal(signal: NodeJS.Signals, maxMs = 2_000): void {
  process.kill(process.pid, signal);
  const slot = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + maxMs;
  for (let left = maxMs; left > 0; left = end - Date.now()) Atomics.wait(slot, 0, 0, left);
}
