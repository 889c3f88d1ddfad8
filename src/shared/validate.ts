import { describe } from './describe.js';
import { InvalidArgumentError } from './errors.js';
import { didYouMean } from './suggest.js';

/**
 * The rules every options object of the package is checked by (the core
 * options, `windows()`, `postgres()`), eagerly and with the same errors: an
 * {@link InvalidArgumentError} whose message names the exact option,
 * `ERR_INVALID_ARG_TYPE` for a wrong type, `ERR_INVALID_ARG_VALUE` for a
 * wrong value or an unknown key.
 */

/**
 * The longest finite delay in milliseconds: 2^31 - 1 ms (about 24.8 days),
 * the longest Node's timers (and AbortSignal.timeout) can keep.
 */
export const MAX_WAIT_MS = 0x7fffffff;

/**
 * How a function's options object is named in its errors, and which keys it
 * takes. The messages are `${notObject}, got <value>` and
 * `options.<key> ${notAnOption}: did you mean '<known>'? (known: a, b, c)`.
 *
 * @example
 * ```ts
 * const shape: OptionsShape = { known: ['scope'], notObject: 'windows() options must be an object', notAnOption: 'is not an option of windows()' };
 * ```
 */
export interface OptionsShape {
  /** The keys it takes, in the order the message lists them. */
  readonly known: Iterable<string>;
  /** Other libraries' words for its options (`timeout` -> `wait`), suggested when a key is not a typo of a known one. Default: none. */
  readonly aliases?: Readonly<Record<string, string>>;
  /** The start of the message for options that are not an object. */
  readonly notObject: string;
  /** What an unknown key is said to be. */
  readonly notAnOption: string;
}

/**
 * `options` as a record whose keys are all known (`undefined`: an empty one).
 * Arrays and `null` are not options objects.
 *
 * @example
 * ```ts
 * const o = optionsRecord({ scope: 'global' }, shape); // { scope: 'global' }
 * optionsRecord({ scpoe: 'global' }, shape); // throws: options.scpoe is not an option of windows(): did you mean 'scope'? (known: scope)
 * ```
 */
export function optionsRecord(options: unknown, shape: OptionsShape): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `${shape.notObject}, got ${describe(options)}`);
  }
  const known = new Set(shape.known);
  for (const key of Object.keys(options)) {
    if (known.has(key)) continue;
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `options.${key} ${shape.notAnOption}${didYouMean(key, known, shape.aliases)} (known: ${[...known].join(', ')})`
    );
  }
  return options as Record<string, unknown>;
}

/**
 * `value` when it is a boolean or undefined.
 *
 * @example
 * ```ts
 * const die = optionalBoolean(o.die, 'die') ?? false;
 * ```
 */
export function optionalBoolean(value: unknown, key: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `options.${key} must be a boolean, got ${describe(value)}`);
}

/**
 * `value` when it is a string or undefined.
 *
 * @example
 * ```ts
 * const host = optionalString(o.host, 'host');
 * ```
 */
export function optionalString(value: unknown, key: string): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `options.${key} must be a string, got ${describe(value)}`);
}

/**
 * `value` when it is an integer from `min` to `max` (both included); `max`
 * is at most {@link MAX_WAIT_MS} for a delay.
 *
 * @example
 * ```ts
 * const port = integerInRange(o.port, 'port', 1, 65535);
 * ```
 */
export function integerInRange(value: unknown, key: string, min: number, max: number): number {
  if (typeof value !== 'number')
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `options.${key} must be a number, got ${describe(value)}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.${key} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/**
 * `value` when it is one of `choices` or undefined.
 *
 * @example
 * ```ts
 * const scope = oneOf(o.scope, 'scope', ['local', 'global'] as const) ?? 'local';
 * ```
 */
export function oneOf<T extends string>(value: unknown, key: string, choices: readonly T[]): T | undefined {
  if (value === undefined || choices.includes(value as T)) return value as T | undefined;
  const listed = choices.map((choice) => `'${choice}'`);
  const expected = listed.length === 1 ? listed[0] : `${listed.slice(0, -1).join(', ')} or ${listed.at(-1)!}`;
  throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.${key} must be ${expected}, got ${describe(value)}`);
}

/**
 * `value` when it is an AbortSignal (of this realm) or undefined.
 *
 * @example
 * ```ts
 * const signal = optionalSignal(o.signal, 'signal');
 * ```
 */
export function optionalSignal(value: unknown, key: string): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `options.${key} must be an AbortSignal, got ${describe(value)}`);
}
