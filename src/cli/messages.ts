import { DIR_OPTION } from '../drivers/file/path.js';
import { WAIT_OPTION } from '../shared/errors.js';
import { say } from './say.js';

/**
 * The library's messages in the tool's words: they name the `dir` and
 * `wait` options, which on the command line are `--dir` and `-w`. Every message is prefixed
 * `exclusive: `, so a line in cron mail says where it came from.
 */
export function sayError(message: string): void {
  say(`exclusive: ${message.replaceAll(DIR_OPTION, '--dir').replaceAll(WAIT_OPTION, '`-w`')}\n`);
}

/** A duration for people: `2.315 s`, and for a minute or more also `(1 h 23 min 20 s)`. */
export function seconds(ms: number): string {
  const text = `${Number((ms / 1000).toFixed(3))} s`;
  if (ms < 60_000) return text;
  const total = Math.round(ms / 1000);
  const parts = [
    [Math.floor(total / 86_400), 'd'],
    [Math.floor(total / 3600) % 24, 'h'],
    [Math.floor(total / 60) % 60, 'min'],
    [total % 60, 's'],
  ] as const;
  return `${text} (${parts
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n} ${unit}`)
    .join(' ')})`;
}
