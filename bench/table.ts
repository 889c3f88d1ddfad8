/** Markdown output: tables and target check lines. Other sections (bench/postgres.ts) may use these too. */

export function printTable(title: string, header: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(`\n### ${title}\n`);
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}

export interface Check {
  readonly label: string;
  readonly ok: boolean;
  readonly line: string;
}

const checks: Check[] = [];

/** Records and prints one target check, e.g. `uncontended: 14.2x faster than proper-lockfile (target >= 10x): ok`. */
export function check(label: string, ok: boolean, detail: string): void {
  const line = `${label}: ${detail}: ${ok ? 'ok' : 'FAIL'}`;
  checks.push({ label, ok, line });
  console.log(line);
}

export function allChecks(): readonly Check[] {
  return checks;
}

export function note(text: string): void {
  console.log(`\n> ${text}`);
}
