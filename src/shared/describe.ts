/** A short description of a value for error messages: `string "ab…"`, `number -1`, `an instance of Foo`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a primitive here: objects returned above
  return `${typeof value} ${String(value)}`;
}
