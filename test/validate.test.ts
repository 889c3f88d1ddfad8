// The option checks shared by the core options, windows() and postgres(),
// rule by rule, and the base class that tells the package's errors from others.
import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  CannotAcquireLock,
  ExclusiveProcessError,
  InvalidArgumentError,
  LockDriverError,
  LockFileError,
  LockLostError,
  NotHoldingError,
  InstanceError,
} from '../src/index.js';
import {
  integerInRange,
  MAX_WAIT_MS,
  oneOf,
  optionalBoolean,
  optionalSignal,
  optionalString,
  optionsRecord,
  type OptionsShape,
} from '../src/shared/validate.js';

const SHAPE: OptionsShape = {
  known: ['wait', 'scope', 'dir'],
  aliases: { timeout: 'wait' },
  notObject: 'f() options must be an object',
  notAnOption: 'is not an option of f()',
};

/** Asserts that `call` throws an InvalidArgumentError (a TypeError) with `code` and exactly `message`. */
function throwsArgument(t: import('ava').ExecutionContext, call: () => unknown, code: InvalidArgumentError['code'], message: string): void {
  const error = t.throws(call, { instanceOf: InvalidArgumentError, message });
  t.is(error?.code, code);
  t.true(error instanceof TypeError);
}

test('optionsRecord: undefined is no options, an object passes, anything else is ERR_INVALID_ARG_TYPE', (t) => {
  t.deepEqual(optionsRecord(undefined, SHAPE), {});
  const given = { wait: 1, dir: '/x' };
  t.is(optionsRecord(given, SHAPE), given);
  t.deepEqual(optionsRecord(Object.create(null) as object, SHAPE), {});
  throwsArgument(t, () => optionsRecord(null, SHAPE), 'ERR_INVALID_ARG_TYPE', 'f() options must be an object, got null');
  throwsArgument(
    t,
    () => optionsRecord(['wait'], SHAPE),
    'ERR_INVALID_ARG_TYPE',
    'f() options must be an object, got an instance of Array'
  );
  throwsArgument(t, () => optionsRecord('wait', SHAPE), 'ERR_INVALID_ARG_TYPE', 'f() options must be an object, got string "wait"');
});

test('optionsRecord: an unknown key is ERR_INVALID_ARG_VALUE, with the typo fixed, else an alias, and the known keys', (t) => {
  throwsArgument(
    t,
    () => optionsRecord({ wiat: 1 }, SHAPE),
    'ERR_INVALID_ARG_VALUE',
    "options.wiat is not an option of f(): did you mean 'wait'? (known: wait, scope, dir)"
  );
  throwsArgument(
    t,
    () => optionsRecord({ Scope: 'x' }, SHAPE),
    'ERR_INVALID_ARG_VALUE',
    "options.Scope is not an option of f(): did you mean 'scope'? (known: wait, scope, dir)"
  );
  throwsArgument(
    t,
    () => optionsRecord({ timeout: 1 }, SHAPE),
    'ERR_INVALID_ARG_VALUE',
    "options.timeout is not an option of f(): did you mean 'wait'? (known: wait, scope, dir)"
  );
  throwsArgument(
    t,
    () => optionsRecord({ wait: 1, color: 'red' }, SHAPE),
    'ERR_INVALID_ARG_VALUE',
    'options.color is not an option of f() (known: wait, scope, dir)'
  );
  const noAliases: OptionsShape = { ...SHAPE, aliases: undefined };
  throwsArgument(
    t,
    () => optionsRecord({ timeout: 1 }, noAliases),
    'ERR_INVALID_ARG_VALUE',
    'options.timeout is not an option of f() (known: wait, scope, dir)'
  );
});

test('optionalBoolean and optionalString: undefined or the type, else ERR_INVALID_ARG_TYPE naming the option', (t) => {
  t.is(optionalBoolean(undefined, 'die'), undefined);
  t.is(optionalBoolean(false, 'die'), false);
  throwsArgument(t, () => optionalBoolean('yes', 'die'), 'ERR_INVALID_ARG_TYPE', 'options.die must be a boolean, got string "yes"');
  t.is(optionalString(undefined, 'host'), undefined);
  t.is(optionalString('', 'host'), '');
  throwsArgument(t, () => optionalString(5432, 'host'), 'ERR_INVALID_ARG_TYPE', 'options.host must be a string, got number 5432');
});

test('integerInRange: both ends included; a non-number is ERR_INVALID_ARG_TYPE, a fraction, NaN or out of range ERR_INVALID_ARG_VALUE', (t) => {
  t.is(integerInRange(0, 'exitCode', 0, 255), 0);
  t.is(integerInRange(255, 'exitCode', 0, 255), 255);
  // The longest delay a Node timer keeps (a longer one fires after 1 ms).
  t.is(MAX_WAIT_MS, 2 ** 31 - 1);
  t.is(integerInRange(MAX_WAIT_MS, 'sessionTimeout', 100, MAX_WAIT_MS), 2147483647);
  throwsArgument(
    t,
    () => integerInRange('1', 'exitCode', 0, 255),
    'ERR_INVALID_ARG_TYPE',
    'options.exitCode must be a number, got string "1"'
  );
  for (const bad of [-1, 256, 1.5, Number.NaN, Infinity]) {
    throwsArgument(
      t,
      () => integerInRange(bad, 'exitCode', 0, 255),
      'ERR_INVALID_ARG_VALUE',
      `options.exitCode must be an integer from 0 to 255, got ${bad}`
    );
  }
  throwsArgument(
    t,
    () => integerInRange(MAX_WAIT_MS + 1, 'heartbeat', 10, MAX_WAIT_MS),
    'ERR_INVALID_ARG_VALUE',
    'options.heartbeat must be an integer from 10 to 2147483647, got 2147483648'
  );
});

test('oneOf: undefined or a choice; anything else is ERR_INVALID_ARG_VALUE listing the choices', (t) => {
  t.is(oneOf(undefined, 'scope', ['local', 'global']), undefined);
  t.is(oneOf('global', 'scope', ['local', 'global']), 'global');
  throwsArgument(
    t,
    () => oneOf('Global', 'scope', ['local', 'global']),
    'ERR_INVALID_ARG_VALUE',
    "options.scope must be 'local' or 'global', got string \"Global\""
  );
  throwsArgument(t, () => oneOf(1, 'mode', ['a', 'b', 'c']), 'ERR_INVALID_ARG_VALUE', "options.mode must be 'a', 'b' or 'c', got number 1");
  throwsArgument(t, () => oneOf(null, 'mode', ['only']), 'ERR_INVALID_ARG_VALUE', "options.mode must be 'only', got null");
});

test('optionalSignal: undefined or an AbortSignal, else ERR_INVALID_ARG_TYPE', (t) => {
  const signal = AbortSignal.abort();
  t.is(optionalSignal(signal, 'signal'), signal);
  t.is(optionalSignal(undefined, 'signal'), undefined);
  throwsArgument(
    t,
    () => optionalSignal(new AbortController(), 'signal'),
    'ERR_INVALID_ARG_TYPE',
    'options.signal must be an AbortSignal, got an instance of AbortController'
  );
  throwsArgument(
    t,
    () => optionalSignal({ aborted: false }, 'signal'),
    'ERR_INVALID_ARG_TYPE',
    'options.signal must be an AbortSignal, got an instance of Object'
  );
});

test('every error class of the package is an ExclusiveProcessError, InvalidArgumentError is also still a TypeError; Node errors are not', (t) => {
  const errors = [
    new CannotAcquireLock('n', '/tmp/n.lock', 1),
    new LockFileError('ERR_LOCK_DIR', '/x', 'no dir'),
    new LockDriverError('ERR_DRIVER_UNAVAILABLE', 'no driver'),
    new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'bad'),
    new LockLostError('n', '/tmp/n.lock', 'gone'),
    new NotHoldingError('not held'),
    new InstanceError('ERR_NO_INSTANCE', '/tmp/n.sock', 'none'),
  ];
  for (const error of errors) {
    t.true(error instanceof ExclusiveProcessError, error.name);
    t.true(error instanceof Error, error.name);
    t.true(error.code.startsWith('ERR_'));
  }
  t.true(errors[3] instanceof TypeError);
  t.is(errors[3].name, 'TypeError');
  // Subclasses keep the ordinary check.
  t.false(errors[1] instanceof CannotAcquireLock);
  t.false(errors[3] instanceof LockFileError);
  t.false(errors[0] instanceof InvalidArgumentError);
  // Node's own errors have ERR_ codes too, and are not ours.
  const node = t.throws(() => readFileSync('x\0y'));
  t.is((node as NodeJS.ErrnoException).code, 'ERR_INVALID_ARG_VALUE');
  t.false(node instanceof ExclusiveProcessError);
  t.false(new TypeError('x') instanceof ExclusiveProcessError);
  for (const value of [null, undefined, 'ERR_LOCK_HELD', { code: 'ERR_LOCK_HELD' }, Object.create(null) as object])
    t.false(value instanceof ExclusiveProcessError);
  // The brand is invisible: not in keys, JSON or the inspected error.
  t.deepEqual(Object.getOwnPropertySymbols(errors[0]), []);
  t.false(JSON.stringify({ ...errors[4] }).includes('exclusive-process.error'));
});

test('errors thrown by the API are ExclusiveProcessErrors', async (t) => {
  const { Exclusive, exclusive, windows } = await import('../src/index.js');
  t.throws(() => Exclusive.lock({ name: 'x', wiat: 1 } as never), { instanceOf: ExclusiveProcessError });
  t.throws(() => exclusive(() => 1, { exitCode: 300 }), { instanceOf: ExclusiveProcessError });
  t.throws(() => windows({ scope: 'x' as never }), { instanceOf: ExclusiveProcessError, code: 'ERR_INVALID_ARG_VALUE' });
  const { postgres } = await import('../src/postgres.js');
  t.throws(() => postgres({ port: 0 }), { instanceOf: ExclusiveProcessError, code: 'ERR_INVALID_ARG_VALUE' });
});
