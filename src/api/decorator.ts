import 'reflect-metadata';
import { describe } from '../shared/describe.js';
import { traceName } from '../core/debug.js';
import type { LockSettings } from '../core/settings.js';
import { InvalidArgumentError } from '../shared/errors.js';
import { callerFile, nameForFile } from './default-name.js';
import { parseOptions } from './options.js';
import type { ExclusiveDecorator, Method } from './types.js';
import { guard } from './wrap.js';

/**
 * The `reflect-metadata` key under which `@Exclusive` records its options
 * and the lock's resolved `name` (the default one too), on the class
 * (prototype for instance methods) with the method's key, and on the
 * decorated function itself.
 *
 * `experimentalDecorators`: recorded when the class is defined. Standard
 * decorators learn their class only from it: a static method's record is
 * complete once the class is defined; an instance method's record appears
 * on the prototype at the first instance, and the one on the function has
 * no default `name` until then (nor a wrong one).
 *
 * @example
 * ```ts
 * class Jobs {
 *   @Exclusive() backup() {}
 *   @Exclusive({ name: 'nightly', wait: true }) nightly() {}
 * }
 * Reflect.getMetadata(EXCLUSIVE_METADATA, Jobs.prototype, 'backup'); // { name: 'my-app/src/jobs:Jobs.backup' }
 * Reflect.getMetadata(EXCLUSIVE_METADATA, Jobs.prototype, 'nightly'); // { name: 'nightly', wait: true }
 * ```
 */
export const EXCLUSIVE_METADATA = 'exclusive-process:options';

/**
 * `Symbol.metadata` (Node 20 lacks it; compilers then give standard
 * decorators no `context.metadata`, the only link from a method decorator to
 * its class). Defined as TypeScript's documentation suggests, as esbuild and
 * Babel fall back to: `Symbol.for('Symbol.metadata')`.
 */
const SYMBOL_METADATA: symbol = (Symbol as { metadata?: symbol }).metadata ?? defineSymbolMetadata();

function defineSymbolMetadata(): symbol {
  const symbol = Symbol.for('Symbol.metadata');
  Object.defineProperty(Symbol, 'metadata', { value: symbol, configurable: true });
  return symbol;
}

/** `Exclusive` called as a decorator (`@Exclusive`) or a decorator factory (`@Exclusive(options)`). */
export function decorate(...args: unknown[]): unknown {
  if (args.length <= 1) return decorator(parseOptions(args[0]), args[0]);
  return (decorator(parseOptions(undefined), undefined) as (...a: unknown[]) => unknown)(...args);
}

function decorator(settings: LockSettings, options: unknown): ExclusiveDecorator {
  const metadata = { ...(options as object | undefined) };
  return function exclusiveDecorator(value: unknown, contextOrKey: unknown, descriptor?: PropertyDescriptor): any {
    // Applied by the class's file (or a helper library, skipped): the default
    // name's file is where the class is, not where a shared factory such as
    // `const Job = () => Exclusive({ wait: 60_000 })` was written.
    const file = settings.name === undefined ? callerFile(true) : '';
    if (descriptor !== undefined || typeof contextOrKey !== 'object' || contextOrKey === null) {
      return decorateLegacy(settings, metadata, file, value as object, contextOrKey as string | symbol, descriptor);
    }
    return decorateStandard(settings, metadata, file, value, contextOrKey as ClassMethodDecoratorContext);
  } as ExclusiveDecorator;
}

/**
 * Copies the `reflect-metadata` entries that decorators applied before this
 * one defined on the method itself to its replacement: frameworks read them
 * from the function (NestJS's `@Cron`, `@Interval`, `SetMetadata`), so
 * `@Exclusive()` written above them must not hide them. Returns `replacement`.
 */
function carryMetadata(method: Method, replacement: Method): Method {
  for (const key of Reflect.getOwnMetadataKeys(method) as unknown[]) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, method), replacement);
  }
  return replacement;
}

/** The error for a decorated member that is not a method; `what` says what it is: `a getter`. */
function notAMethod(what: string): InvalidArgumentError {
  return new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `@Exclusive decorates methods, not ${what}`);
}

/** What a legacy decorator's descriptor describes, for {@link notAMethod}. */
function legacyMember(descriptor: PropertyDescriptor | undefined): string {
  if (descriptor === undefined) return 'a property'; // property decorators get no descriptor
  if (descriptor.get !== undefined && descriptor.set !== undefined) return 'an accessor';
  if (descriptor.get !== undefined) return 'a getter';
  if (descriptor.set !== undefined) return 'a setter';
  return `a property holding ${describe(descriptor.value)}`;
}

function decorateLegacy(
  settings: LockSettings,
  metadata: object,
  file: string,
  target: object,
  key: string | symbol,
  descriptor: PropertyDescriptor | undefined
): PropertyDescriptor {
  if (typeof descriptor?.value !== 'function') throw notAMethod(legacyMember(descriptor));
  const owner = typeof target === 'function' ? target : target.constructor;
  const name = settings.name ?? `${nameForFile(file)}:${owner.name}.${String(key)}`;
  if (settings.name === undefined) traceName(name, file, '@Exclusive');
  descriptor.value = carryMetadata(
    descriptor.value as Method,
    guard(descriptor.value, settings, () => name)
  );
  const record = { ...metadata, name };
  Reflect.defineMetadata(EXCLUSIVE_METADATA, record, target, key);
  Reflect.defineMetadata(EXCLUSIVE_METADATA, record, descriptor.value);
  return descriptor;
}

function decorateStandard(
  settings: LockSettings,
  metadata: object,
  file: string,
  method: unknown,
  context: ClassMethodDecoratorContext
): Method {
  if (context.kind !== 'method' || typeof method !== 'function')
    throw notAMethod(`${/^[aeiou]/.test(context.kind) ? 'an' : 'a'} ${context.kind}`);
  const key = context.name;
  // The class is not known at decoration time: find the one that declares
  // the method from `this` on first call (a subclass instance must not get
  // another name).
  const declaring = (self: unknown): object | undefined =>
    context.metadata == null ? declaringWithoutMetadata(self, key, replacement) : declaringWithMetadata(self, context);
  // A detached call (`const f = obj.m; f()`) has no `this`: the class (static)
  // or the first instance's prototype, seen by the initializer, stands in.
  // Named at the first call, once the class has its final name.
  let initialized: unknown;
  let knownName: string | undefined; // the default name, once known from a class (and logged)
  const nameFor = (self: unknown): string => {
    const name = `${nameForFile(file)}:${className(self, context, declaring)}.${String(key)}`;
    if (knownName === undefined && self != null) {
      knownName = name;
      traceName(name, file, '@Exclusive');
    }
    return name;
  };
  const replacement: Method = carryMetadata(
    method as Method,
    guard(method as Method, settings, (self) => settings.name ?? nameFor(self == null || self === globalThis ? initialized : self))
  );
  const record = recordOf(metadata, settings, () => knownName ?? (initialized === undefined ? undefined : nameFor(initialized)));
  Reflect.defineMetadata(EXCLUSIVE_METADATA, record, replacement);
  let recorded = false;
  context.addInitializer(function (this: unknown) {
    initialized ??= context.static ? this : Object.getPrototypeOf(this); // a prototype, not the instance: nothing kept alive
    const owner = recorded || context.private ? undefined : declaringOrNone(declaring, this);
    if (owner !== undefined) {
      recorded = true;
      Reflect.defineMetadata(EXCLUSIVE_METADATA, record, owner, key);
    }
  });
  return replacement;
}

/**
 * The declaring class (static) or prototype of a standard decorator's
 * method, from `self`, by `context.metadata`: the class's own metadata
 * object, which holds even when another decorator replaced the method; a
 * class decorator that returned a subclass (`C => class extends C {}`) holds
 * it then, and the declaring one is the nearest up from there that owns the key.
 */
function declaringWithMetadata(self: unknown, context: ClassMethodDecoratorContext): object | undefined {
  for (let o = self as object | null | undefined; o != null; o = Object.getPrototypeOf(o)) {
    const cls: unknown = context.static ? o : Object.hasOwn(o, 'constructor') ? (o as { constructor: unknown }).constructor : undefined;
    if (
      typeof cls === 'function' &&
      Object.hasOwn(cls, SYMBOL_METADATA) &&
      (cls as unknown as Record<symbol, unknown>)[SYMBOL_METADATA] === context.metadata
    ) {
      return owning(o, context.name) ?? o;
    }
  }
  return undefined;
}

/**
 * Without `context.metadata` (Babel 2022-03, 2023-01): the prototype that
 * holds this very `replacement`; else, when another decorator replaced it,
 * the only one in the chain that owns the key. Two owners (a subclass
 * overrides the wrapped method) cannot be told apart: refused, never
 * named after whichever class called first.
 */
function declaringWithoutMetadata(self: unknown, key: string | symbol, replacement: Method): object | undefined {
  const owners: object[] = [];
  for (let o = owning(self as object, key); o !== undefined; o = owning(Object.getPrototypeOf(o) as object, key)) {
    if ((o as Record<string | symbol, unknown>)[key] === replacement) return o;
    owners.push(o);
  }
  if (owners.length > 1) {
    throw new InvalidArgumentError(
      'ERR_INVALID_LOCK_NAME',
      `No default lock name for @Exclusive ${String(key)}(): it is wrapped by another decorator and overridden in a subclass, and this compiler gives decorators no context.metadata, so its declaring class cannot be told. Pass options.name.`
    );
  }
  return owners[0];
}

/** The nearest object up from `from` (short of Object's and Function's prototypes) that owns `key`. */
function owning(from: object, key: string | symbol): object | undefined {
  for (let o: object | null = from; o != null && o !== Object.prototype && o !== Function.prototype; o = Object.getPrototypeOf(o)) {
    if (Object.hasOwn(o, key)) return o;
  }
  return undefined;
}

/** `declaring(self)` for the metadata record at construction, which must not fail: an undecidable class is reported at the call. */
function declaringOrNone(declaring: (self: unknown) => object | undefined, self: unknown): object | undefined {
  try {
    return declaring(self);
  } catch {
    return undefined;
  }
}

/** The name of the class declaring the method called on `self`, for its default lock name. */
function className(self: unknown, context: ClassMethodDecoratorContext, declaring: (self: unknown) => object | undefined): string {
  if (self == null) return 'anonymous'; // a detached call before any instance existed
  const owner = declaring(self) ?? (context.static ? self : Object.getPrototypeOf(self));
  return (
    (context.static ? (owner as { name?: string })?.name : (owner as { constructor?: { name?: string } })?.constructor?.name) ?? 'anonymous'
  );
}

/**
 * The metadata record of a standard decorator: the options and `name`. A
 * default name needs the class, known only from the class's definition
 * (static) or first instance, so it is read when the record is: by then the
 * class has its final name. Unknown yet: no `name` rather than a wrong one.
 */
function recordOf(metadata: object, settings: LockSettings, resolveName: () => string | undefined): object {
  if (settings.name !== undefined) return { ...metadata, name: settings.name };
  return Object.defineProperty({ ...metadata }, 'name', { get: resolveName, enumerable: true });
}
