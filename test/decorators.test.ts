import test from 'ava';
import { join } from 'node:path';
import { lockDir, ROOT, run } from './helpers/processes.js';

// @Exclusive in both TypeScript decorator modes, run for real: tsx compiles
// test/fixtures/decorators.ts with standard decorators by default, and with
// experimentalDecorators under test/fixtures/tsconfig.legacy.json.
const modes = [
  ['standard (TC39) decorators', {}, 2],
  ['experimentalDecorators', { TSX_TSCONFIG_PATH: join(ROOT, 'test', 'fixtures', 'tsconfig.legacy.json') }, 3],
] as const;

for (const [mode, env, decoratorArguments] of modes) {
  test(`${mode}: instance, static, sync, async, bare and factory forms; default names; re-entry; metadata`, async (t) => {
    const dir = lockDir();
    // The forms without `dir` use the default directory: a private one, since other suites run this fixture at the same time.
    const result = await run('decorators.ts', [dir], { ...env, EXCLUSIVE_PROCESS_DIR: dir });
    t.is(result.code, 0, result.stderr);
    t.deepEqual(JSON.parse(result.stdout), {
      decoratorArguments, // proves which mode compiled the fixture
      results: [3, 6, 9], // `this` and arguments pass through; a subclass instance shares the lock
      maxRunning: 1, // three concurrent calls with wait: true ran one at a time
      scale: 6, // sync method, sync result
      reentrant: 'outer>inner', // a method calling another with the same lock name re-enters it
      failure: 'from fail', // the error itself passes through
      bare: 'exclusive-process/test/fixtures/decorators:Jobs.bare', // @Exclusive without parentheses, default name and directory
      make: 'static',
      // Called without `this` (`const { where } = Jobs; where()`): still the class's lock.
      detached: ['exclusive-process/test/fixtures/decorators:Jobs.where', 'exclusive-process/test/fixtures/decorators:Jobs.here'],
      // Through a factory written in another file: named after the class's file.
      viaFactory: 'exclusive-process/test/fixtures/decorators:Jobs.viaFactory',
      conflict: 'exclusive-process/test/fixtures/decorators:Jobs.later', // default name of a static async method
      holderInside: true,
      // The resolved name is in the record, the default one too. Standard
      // decorators learn an instance method's class at its first instance:
      // before, its record is not on the prototype yet, and the function's
      // record has no name (not a wrong one).
      early:
        decoratorArguments === 3
          ? { prototype: { name: nameOf('here') }, static: { name: nameOf('make') }, fn: { name: nameOf('here') } }
          : { prototype: null, static: { name: nameOf('make') }, fn: {} },
      metadata: {
        here: { name: nameOf('here') },
        prototype: { name: 'shared', dir },
        static: { name: nameOf('make') },
        fn: { dir, name: nameOf('scale') },
      },
    });
  });
}

function nameOf(method: string): string {
  return `exclusive-process/test/fixtures/decorators:Jobs.${method}`;
}

const generator =
  'ERR_INVALID_ARG_VALUE A generator function cannot be made exclusive: the lock would be released before the generator runs. Wrap the code that consumes it.';
for (const [mode, env] of modes) {
  test(`${mode}: getters, setters, fields and generators are refused, each error saying what it got`, async (t) => {
    const result = await run('decorator-misuse.ts', [], env);
    t.is(result.code, 0, result.stderr);
    t.deepEqual(JSON.parse(result.stdout), {
      getter: 'ERR_INVALID_ARG_TYPE @Exclusive decorates methods, not a getter',
      setter: 'ERR_INVALID_ARG_TYPE @Exclusive decorates methods, not a setter',
      // Legacy property decorators get no descriptor: a field cannot be told from other properties.
      field: `ERR_INVALID_ARG_TYPE @Exclusive decorates methods, not a ${mode === 'experimentalDecorators' ? 'property' : 'field'}`,
      generatorMethod: generator,
      asyncGeneratorMethod: generator,
      generatorFunction: generator,
      asyncGeneratorFunction: generator,
    });
  });
}
