/**
 * Sleeps `ms`, or less: until `signal` aborts, or until the function handed
 * to `onWake` is called (a driver's wake-up message). Never rejects.
 *
 * @example
 * await sleep(100, signal, (wake) => (onMessage = wake));
 */
export function sleep(ms: number, signal: AbortSignal, onWake?: (wake: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    onWake?.(done);
  });
}
