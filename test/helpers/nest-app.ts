import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileCopy, packageCopy } from './package-copy.js';
import { ROOT } from './processes.js';

/** What {@link buildNestExample} made: the app's folder, and what tsc printed for the package and for the app. */
export interface BuiltApp {
  readonly app: string;
  readonly packageTsc: string;
  readonly appTsc: string;
}

/**
 * examples/nestjs built as a user builds it: the package compiled (a copy,
 * so the work tree's dist/ is left alone) and installed in the app's
 * node_modules, then the app compiled by tsc with its own tsconfig
 * (experimentalDecorators, emitDecoratorMetadata) into its dist/.
 */
export function buildNestExample(): BuiltApp {
  const root = mkdtempSync(join(tmpdir(), 'exclusive-nest-'));
  const pkg = packageCopy(root);
  const packageTsc = compileCopy(pkg);
  const app = join(root, 'app');
  cpSync(join(ROOT, 'examples', 'nestjs'), app, { recursive: true, filter: (path) => !/[/\\](dist|node_modules)$/.test(path) });
  const modules = join(app, 'node_modules');
  mkdirSync(modules);
  symlinkSync(pkg, join(modules, 'exclusive-process'));
  for (const dependency of ['@nestjs', '@types', 'reflect-metadata', 'rxjs'])
    symlinkSync(join(ROOT, 'node_modules', dependency), join(modules, dependency));
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: app,
    encoding: 'utf8',
  });
  return { app, packageTsc, appTsc: `${tsc.stdout}${tsc.stderr}` };
}
