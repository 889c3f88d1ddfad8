// The Windows driver's waiter thread, built beside the CLI's bundle: a worker
// runs a file, and waiter-pool.ts looks for it next to the module that starts
// it, which in the bundle is dist/cli/main.js.
import '../drivers/windows/waiter.js';
