import { readFileSync } from 'node:fs';

/**
 * Loads ffi-rs. On Linux its loader picks the glibc or the musl binary by
 * asking `process.report.getReport()`, which builds a whole diagnostic
 * report (libuv handles, shared objects, heap: 5-8 ms, most of what loading
 * ffi-rs costs, and a large part of the `exclusive` command's start-up). When
 * /usr/bin/ldd says glibc (the test newer napi-rs loaders use), the loader is
 * given that answer instead, for the duration of the synchronous `require`
 * only; otherwise (musl, no ldd, or a load that fails this way) it asks the
 * report as before.
 */
export function requireFfi(): typeof import('ffi-rs') {
  const report = process.platform === 'linux' ? process.report : undefined;
  // The property itself (not a method reference), so that it is put back exactly as it was.
  const original = report === undefined ? undefined : Object.getOwnPropertyDescriptor(report, 'getReport');
  if (report === undefined || typeof original?.value !== 'function' || original.writable !== true || !lddSaysGlibc()) {
    return require('ffi-rs') as typeof import('ffi-rs');
  }
  report.getReport = () => ({ header: { glibcVersionRuntime: 'glibc' } });
  try {
    return require('ffi-rs') as typeof import('ffi-rs');
  } catch {
    Object.defineProperty(report, 'getReport', original);
    return require('ffi-rs') as typeof import('ffi-rs'); // Node forgets a module that threw: this loads it afresh
  } finally {
    Object.defineProperty(report, 'getReport', original);
  }
}

/** True when /usr/bin/ldd is glibc's (musl's mentions musl). */
function lddSaysGlibc(): boolean {
  try {
    const ldd = readFileSync('/usr/bin/ldd', 'latin1');
    return !ldd.includes('musl') && /glibc|GNU C Library/.test(ldd);
  } catch {
    return false;
  }
}
