import { writeSync } from 'node:fs';

/**
 * Writes to stderr. A closed stderr (the reader of a pipe died) must not
 * crash the tool: it still has a command to run, stop or wait for, and an
 * exit status to give.
 */
export function say(text: string): void {
  try {
    writeSync(2, text);
  } catch {
    // Nowhere to say it.
  }
}
