// The running instance of the single-instance bench: forever() with a trivial
// handler; prints "ready" once it listens. Usage: instance-peer.ts <dir> <name>
import { Exclusive } from '../src/index.js';

const [dir, name] = process.argv.slice(2);
Exclusive.forever({ name, dir, onSecondInstance: () => ({ message: 'ok' }) });
process.stdout.write('ready\n');
setInterval(() => {}, 60_000);
