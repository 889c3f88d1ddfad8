/**
 * "Did you mean ...?" for a mistyped option key or driver name: the known
 * word that differs only in case or `_`/`-`, else the one within a small
 * edit distance (a swap of two neighbours counts as one edit), else none.
 */

/**
 * `: did you mean 'wait'?` for `Wait`, `wiat`, `wait_`... ('' when nothing
 * known is close); `aliases` maps other libraries' words to ours (`timeout` -> `wait`).
 */
export function didYouMean(given: string, known: Iterable<string>, aliases: Readonly<Record<string, string>> = {}): string {
  const match = closest(given, known) ?? (Object.hasOwn(aliases, given) ? aliases[given] : undefined);
  return match === undefined ? '' : `: did you mean '${match}'?`;
}

/** The known word closest to `given`, if any is close enough to be a typo of it. */
export function closest(given: string, known: Iterable<string>): string | undefined {
  const target = normalize(given);
  // Short words have few letters to spare: 'dri' is not a typo of 'die'.
  const limit = target.length <= 3 ? 0 : target.length <= 5 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const word of known) {
    const distance = editDistance(target, normalize(word));
    if (distance <= limit && distance < bestDistance) {
      best = word;
      bestDistance = distance;
    }
  }
  return best;
}

function normalize(word: string): string {
  return word.toLowerCase().replace(/[-_\s]/g, '');
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return Infinity; // never close enough: skip the table
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
    }
  }
  return rows[a.length][b.length];
}
