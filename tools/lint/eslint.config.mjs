// ESLint for the whole repository, run by `npm run lint` (tools/lint/run.mjs)
// from the repository root. Type-checked rules use this folder's TypeScript 6
// (typescript-eslint needs < 6.1; the project itself builds with TypeScript 7).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

const TS = ['**/*.{ts,mts,cts}'];

/** `no-restricted-imports` entries: imports whose path matches `regex` are refused, with why. */
function refuse(regex, message, allowTypeImports = false) {
  return { regex, message, allowTypeImports };
}

/**
 * The layering of src/ (docs/development.md): shared/ and native/
 * are leaves; drivers take shared/, native/, drivers/file/ and drivers/types.ts
 * (and only types from core/); core/ takes shared/ and driver types; api/ and
 * cli/ sit on top. A lazy `require()` (native/kernel32 from
 * shared/process-identity, drivers from select.ts and cli/driver.ts) is how a
 * lower layer may reach an optional piece, and is not checked here.
 */
const layers = [
  {
    files: ['src/shared/**'],
    patterns: [
      refuse('^\\.\\./(api|cli|core|drivers|instance|native)(/|$)', 'shared/ is a leaf: it imports nothing but node: modules and shared/.'),
    ],
  },
  {
    files: ['src/native/**'],
    patterns: [
      refuse('^\\.\\./(api|cli|core|drivers|instance)(/|$)', 'native/ is a leaf: it imports nothing above it.'),
      refuse('^\\.\\./shared/(?!errors\\.js$)', 'native/ may import shared/errors.js only.'),
    ],
  },
  {
    files: ['src/drivers/*.ts'],
    patterns: [
      refuse('^\\.\\./(api|cli|instance)(/|$)', 'drivers/ sit below api/, cli/ and instance/.'),
      refuse('^\\.\\./core(/|$)', 'drivers/ take only types from core/.', true),
    ],
  },
  {
    files: ['src/drivers/*/**'],
    patterns: [
      refuse('^\\.\\./\\.\\./(api|cli|instance)(/|$)', 'drivers/ sit below api/, cli/ and instance/.'),
      refuse('^\\.\\./\\.\\./core(/|$)', 'drivers/ take only types from core/.', true),
      refuse('^\\.\\./(?!file/|types\\.js$|\\.\\./)', 'A driver imports no other driver: shared code goes in drivers/file/ (or shared/).'),
    ],
  },
  {
    files: ['src/core/**'],
    patterns: [
      refuse('^\\.\\./(api|cli|instance|native)(/|$)', 'core/ imports shared/ and driver types only.'),
      refuse('^\\.\\./drivers/(?!types\\.js$)', 'core/ imports shared/ and driver types only (drivers/types.ts).'),
      refuse('^\\.\\./drivers/types\\.js$', 'core/ takes only types from drivers/types.ts.', true),
    ],
  },
  {
    // The single-instance transport (protocol, endpoint, server, clients):
    // beside the lock, not part of it. It takes shared/, native/ and the lock
    // file naming rules (drivers/file/path.ts); api/ wires it to the locks.
    files: ['src/instance/**'],
    patterns: [
      refuse('^\\.\\./(api|cli|core)(/|$)', 'instance/ sits below api/ and beside core/: it knows nothing of locks but their paths.'),
      refuse(
        '^\\.\\./drivers/(?!file/path\\.js$)',
        'instance/ takes only the lock file naming rules (drivers/file/path.ts) from drivers/.'
      ),
    ],
  },
  {
    files: ['src/api/**'],
    patterns: [refuse('^\\.\\./cli(/|$)', 'api/ does not depend on the CLI.')],
  },
].map(({ files, patterns }) => ({
  name: `layers: ${files.join(', ')}`,
  files,
  rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns }] },
}));

export default defineConfig(
  {
    basePath: root,
    ignores: ['**/node_modules/', 'dist/', '.tmp/', 'docs/'],
  },
  {
    basePath: root,
    languageOptions: { globals: { ...globals.node } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    extends: [js.configs.recommended],
    rules: {
      // A variable a closure may read before its one assignment cannot be const (TDZ).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    basePath: root,
    files: TS,
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: root },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      // The TypeScript convention (noUnusedParameters): a leading _ marks a deliberately unused name.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
      // Rejecting with what a catch caught is rethrowing it.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // Lazy require() is how optional and platform-specific modules load
      // (pg, ffi-rs, one driver per platform, node:crypto: 3-4 ms of the CLI's
      // start-up) in this CommonJS package.
      '@typescript-eslint/no-require-imports': [
        'error',
        { allow: ['^\\.\\.?/', '^ffi-rs$', '^pg$', '^ioredis$', '^redis$', '^node:crypto$'] },
      ],
    },
  },
  {
    // Tests, fixtures and benches: async callbacks without await exercise the
    // async API on purpose; JSON parsed from child processes, decorator
    // signatures of other toolchains and optional tools loaded at run time are
    // untyped by nature. The promise rules stay on.
    basePath: root,
    files: ['{test,bench,examples}/**/*.{ts,mts,cts}'],
    rules: {
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // The NestJS example is a separate app (legacy decorators, ESM): its own
    // tsconfig, with the package mapped to its sources.
    basePath: root,
    files: ['examples/nestjs/**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: false, project: 'examples/nestjs/tsconfig.lint.json', tsconfigRootDir: root },
    },
  },
  {
    // Wrapping any function or method: `(...args: any[]) => any` is the only
    // type every function is assignable to (parameters are contravariant), and
    // a decorator's value, descriptor and return are untyped by its protocol.
    basePath: root,
    files: ['src/api/wrap.ts', 'src/api/types.ts', 'src/api/decorator.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  ...layers.map((layer) => ({ basePath: root, ...layer }))
);
