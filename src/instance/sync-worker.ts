import { workerData, type MessagePort } from 'node:worker_threads';
import { deliver } from './client.js';

/**
 * The thread behind {@link deliverThroughWorker} (client.ts): runs the
 * asynchronous client, posts its outcome on `port`, then wakes the blocked
 * thread through `done`.
 */
const { path, request, timeoutMs, port, done } = workerData as {
  path: string;
  request: Uint8Array;
  timeoutMs: number;
  port: MessagePort;
  done: Int32Array;
};

function wake(message: unknown): void {
  port.postMessage(message);
  Atomics.store(done, 0, 1);
  Atomics.notify(done, 0);
}

deliver(path, Buffer.from(request), timeoutMs).then(
  (delivery) => wake({ delivery }),
  (error: unknown) => {
    const { code, message } = error as { code?: unknown; message?: unknown };
    wake({ error: { code: typeof code === 'string' ? code : undefined, message: String(message) } });
  }
);
