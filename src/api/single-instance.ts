import { writeSync } from 'node:fs';
import { describe } from '../shared/describe.js';
import { CannotAcquireLock, InstanceError, InvalidArgumentError, type InstanceReply } from '../shared/errors.js';
import { integerInRange, MAX_WAIT_MS, optionsRecord, type OptionsShape } from '../shared/validate.js';
import { acquireForProcess } from '../core/acquire.js';
import { die } from '../core/conflict.js';
import { registerExitStep } from '../core/exit.js';
import type { ExclusiveLock } from '../core/handle.js';
import { target, type LockSettings, type Target } from '../core/settings.js';
import { validateName } from '../drivers/file/path.js';
import { deliver, deliverSync } from '../instance/client.js';
import type { Delivery } from '../instance/conversation.js';
import { endpointPath } from '../instance/endpoint.js';
import { MAX_FRAME_BYTES, requestFrame } from '../instance/protocol.js';
import { lockOrDeliverSync, mayBeStarting, RETRY_PAUSE_MS } from '../instance/second.js';
import { listen, type SecondInstanceHandler } from '../instance/server.js';
import { parseOptions, type ExclusiveOptions } from './options.js';

/**
 * Single-instance apps: `forever()` with `onSecondInstance` or `data`, and
 * `Exclusive.notify()`. The transport lives in src/instance/; this file
 * decides what the forms do with it. See docs/internals/single-instance.md.
 */

/** How long a second instance's `forever()` waits for the running instance's reply. */
export const FOREVER_REPLY_TIMEOUT_MS = 10_000;
/** `notify()`'s default timeout. */
export const NOTIFY_TIMEOUT_MS = 5_000;

/** The single-instance options of `forever()`, validated. */
export interface InstanceSettings {
  readonly handler: SecondInstanceHandler | undefined;
  /** The request line, with `data` in it. */
  readonly request: Buffer;
}

/** Takes `onSecondInstance` and `data` out of `forever()`'s options: the rest are the ordinary options. */
export function splitInstanceOptions(options: unknown): { rest: unknown; instance: InstanceSettings | undefined } {
  if (typeof options !== 'object' || options === null || !('onSecondInstance' in options || 'data' in options)) {
    return { rest: options, instance: undefined };
  }
  const { onSecondInstance, data, ...rest } = options as ExclusiveOptions & { onSecondInstance?: unknown; data?: unknown };
  if (onSecondInstance !== undefined && typeof onSecondInstance !== 'function') {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_TYPE',
      `options.onSecondInstance must be a function, got ${describe(onSecondInstance)}`
    );
  }
  if (rest.mode === 'shared' || (typeof rest.limit === 'number' && rest.limit > 1)) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      'options.mode and options.limit cannot be combined with onSecondInstance or data: a single-instance app has one running instance'
    );
  }
  if (rest.skip === true) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      'options.skip cannot be combined with onSecondInstance or data: a second instance hands its message over instead of skipping'
    );
  }
  if (rest.wait !== undefined && rest.wait !== false) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      'options.wait cannot be combined with onSecondInstance or data: a second instance hands its message over instead of waiting'
    );
  }
  return { rest, instance: { handler: onSecondInstance as SecondInstanceHandler | undefined, request: requestOf(data, 'options.data') } };
}

/** The request line carrying `data`, checked now: JSON, and within the size limit. */
function requestOf(data: unknown, what: string): Buffer {
  let request: Buffer;
  try {
    request = requestFrame(data);
  } catch (error) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${what} must be JSON-serializable: ${(error as Error).message}`);
  }
  if (request.length > MAX_FRAME_BYTES) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `${what} is too large: the message with argv and cwd is ${request.length} bytes as JSON; the limit is ${MAX_FRAME_BYTES}`
    );
  }
  return request;
}

/** The endpoint of the lock `t`. */
function endpointOfTarget(t: Target): string {
  return endpointPath({ name: t.name, kind: t.settings.driver.kind, resource: t.resource, dir: t.settings.dir });
}

/**
 * `forever()` of a single-instance app: the lock (then listening when it has
 * a handler), or, when another instance holds it, the message delivered and
 * its reply: printed and exited with (`die`), or thrown with the conflict.
 */
export function foreverSingleInstance(t: Target, instance: InstanceSettings): ExclusiveLock {
  const { die: dies, exitCode } = t.settings;
  const quiet: Target = { ...t, settings: { ...t.settings, die: false } };
  const path = endpointOfTarget(t);
  let outcome: ReturnType<typeof lockOrDeliverSync<ExclusiveLock>>;
  try {
    outcome = lockOrDeliverSync(
      () => acquireForProcess(quiet)!, // never null: skip is refused beside onSecondInstance and data
      () => deliverSync(path, instance.request, FOREVER_REPLY_TIMEOUT_MS)
    );
  } catch (error) {
    if (dies && error instanceof InstanceError) die(error, exitCode);
    throw error;
  }
  switch (outcome.kind) {
    case 'lock':
      if (instance.handler !== undefined) serve(outcome.lock, path, instance.handler);
      return outcome.lock;
    case 'replied':
      return answered(outcome.conflict, outcome.delivery.reply, dies);
    case 'conflict':
      if (dies) die(outcome.conflict, exitCode);
      throw outcome.conflict;
  }
}

/** The endpoints this process listens at: a re-entrant `forever()` of the same lock keeps the first handler. */
const serving = new Set<string>();

/** Listens for second instances while `lock` is held, and until the process ends. */
function serve(lock: ExclusiveLock, path: string, handler: SecondInstanceHandler): void {
  if (serving.has(path)) return;
  let server;
  try {
    server = listen(path, handler);
  } catch (error) {
    void lock.release();
    throw error;
  }
  serving.add(path);
  const forget = registerExitStep(() => server.close());
  lock.signal.addEventListener('abort', () => {
    serving.delete(path);
    forget();
    server.close();
  });
}

/** The second instance got its reply: with `die`, print its message and exit with its code; else throw it with the conflict. */
function answered(conflict: CannotAcquireLock, reply: InstanceReply, dies: boolean): never {
  if (!dies) {
    conflict.reply = reply;
    throw conflict;
  }
  if (reply.message !== undefined) writeSync(reply.failed ? 2 : 1, `${reply.message}\n`);
  process.exit(reply.exitCode);
}

/**
 * Options of `Exclusive.notify()`.
 *
 * @example
 * ```ts
 * const options: NotifyOptions = { dir: '/var/lib/my-app', timeout: 2_000 };
 * await Exclusive.notify('my-app', { reload: true }, options);
 * ```
 */
export interface NotifyOptions {
  /** The lock directory, as the running instance's `forever()` got it. Default: as in {@link ExclusiveOptions}. */
  dir?: string;
  /** The driver, as the running instance's `forever()` got it. Default: the platform's native driver. */
  driver?: ExclusiveOptions['driver'];
  /** How long to wait for the reply, in milliseconds (1 to 2147483647). Default: 5000. */
  timeout?: number;
}

const NOTIFY_OPTIONS: OptionsShape = {
  known: ['dir', 'driver', 'timeout'],
  aliases: { wait: 'timeout', directory: 'dir' },
  notObject: 'notify() options must be an object',
  notAnOption: 'is not an option of notify()',
};

/** `Exclusive.notify()`: see its JSDoc in types.ts. */
export async function notify(name: unknown, data: unknown, options?: NotifyOptions): Promise<InstanceReply> {
  validateName(name, 'name');
  const o = optionsRecord(options, NOTIFY_OPTIONS);
  const timeoutMs = o.timeout === undefined ? NOTIFY_TIMEOUT_MS : integerInRange(o.timeout, 'timeout', 1, MAX_WAIT_MS);
  const settings: LockSettings = parseOptions({ dir: o.dir, driver: o.driver });
  const request = requestOf(data, 'data');
  const t = target(settings, name as string);
  const path = endpointOfTarget(t);
  const deadline = Date.now() + timeoutMs;
  const startedAt = Date.now();
  for (;;) {
    const delivery: Delivery = await deliver(path, request, Math.max(1, deadline - Date.now()));
    if (delivery.kind === 'replied') return delivery.reply;
    const holder = await settings.driver.holder(t.resource, t.name);
    if (holder === null || !mayBeStarting(holder, startedAt) || Date.now() >= deadline) {
      throw new InstanceError(
        'ERR_NO_INSTANCE',
        path,
        holder === null
          ? `No instance of '${t.name}' is running: nobody holds its lock.`
          : `The instance of '${t.name}' that holds its lock (pid ${holder.pid ?? 'unknown'}) does not listen: it has no onSecondInstance.`
      );
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
  }
}
