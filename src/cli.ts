#!/usr/bin/env node
/**
 * The `exclusive` command's bin. It turns on Node's compile cache first (Node
 * 22+), then loads the command: src/cli/main.ts, which the build bundles with
 * everything it imports into one module (dist/cli/main.js), because resolving
 * and reading some forty modules one by one cost more start-up time than
 * anything else the command does (docs/internals/cli-startup.md).
 */
import './cli/compile-cache.js';
require('./cli/main.js');
