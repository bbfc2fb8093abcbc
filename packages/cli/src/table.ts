/** A cell of a human table: text, a number, or nothing (shown as `-`). */
export type Cell = string | number | bigint | null | undefined;

/**
 * Formats `rows` under `header` as an aligned text table (two spaces between columns, numbers
 * right-aligned), one string per line; "(none)" under the header when there are no rows.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string[] {
  const text = rows.map((row) =>
    row.map((cell) => (cell === null || cell === undefined ? '-' : String(cell))),
  );
  const numeric = header.map((_, column) =>
    rows.every((row) => {
      const cell = row[column];
      return typeof cell === 'number' || typeof cell === 'bigint' || cell === null || cell === undefined;
    }),
  );
  const widths = header.map((title, column) =>
    Math.max(title.length, ...text.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: readonly string[], alignNumbers: boolean): string =>
    cells
      .map((cell, column) =>
        alignNumbers && numeric[column] && rows.length > 0
          ? cell.padStart(widths[column]!)
          : cell.padEnd(widths[column]!),
      )
      .join('  ')
      .trimEnd();
  return [line(header, true), ...(text.length === 0 ? ['(none)'] : text.map((row) => line(row, true)))];
}

/** A duration in milliseconds for people: `850 ms`, `12.3 s`, `4 min`, `2.5 h`, `3 d`. */
export function formatAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

/** A timestamp as ISO text, or `-`. */
export function formatTime(date: Date | null | undefined): string {
  return date === null || date === undefined ? '-' : date.toISOString();
}

/** A value for JSON output: Dates as ISO text, Buffers as UTF-8 text (binary as base64 under `base64`). */
export function jsonReady(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(jsonReady);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, jsonReady(item)]));
  return value;
}
