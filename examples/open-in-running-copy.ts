// A program that opens files in its running copy, as editors and tray apps
// do: the first copy opens its files and keeps running; every later copy
// hands its files to it, prints its answer and exits with its exit code.
//
//   npx tsx examples/open-in-running-copy.ts notes.txt &
//   npx tsx examples/open-in-running-copy.ts todo.txt   # prints: opened todo.txt in the running copy (pid 4242)
import { resolve } from 'node:path';
import { Exclusive } from 'exclusive-process';

const files = process.argv.slice(2).map((file) => resolve(file));

function open(paths: readonly string[]): void {
  for (const path of paths) console.log(`open: ${path}`); // the real app opens a window or a tab here
}

Exclusive.forever({
  name: 'open-in-running-copy',
  die: true, // a later copy exits with the reply
  data: { files },
  onSecondInstance: ({ data }) => {
    const { files: theirs } = data as { files: string[] };
    if (theirs.length === 0) return { exitCode: 2, message: 'nothing to open' };
    open(theirs);
    return { message: `opened ${theirs.join(', ')} in the running copy (pid ${process.pid})` };
  },
});

open(files);
console.log(`running as pid ${process.pid}: start me again with more files`);
setTimeout(() => console.log('closing'), Number(process.env.EXAMPLE_WORK_MS ?? 60_000)); // the app's own life
