// A tiny tagged-template HTML helper: every interpolated value is escaped unless it is already Html
// (built by this helper). Nothing a database row or a request holds reaches the page unescaped.

/** A piece of markup built by {@link html}; only this type is inserted without escaping. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const replacements: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`]/g, (character) => replacements[character]!);
}

type Interpolated = Html | string | number | boolean | null | undefined | readonly Interpolated[];

function render(value: Interpolated): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map((item: Interpolated) => render(item)).join('');
  return escapeHtml(String(value));
}

/** Builds markup: `html\`<td>${row.error}</td>\`` escapes `row.error`; nested `html` results pass as they are. */
export function html(strings: TemplateStringsArray, ...values: Interpolated[]): Html {
  let text = strings[0]!;
  for (let i = 0; i < values.length; i++) text += render(values[i]) + strings[i + 1]!;
  return new Html(text);
}

/** How a payload is shown: text when it is UTF-8, hex otherwise, cut at `limitBytes`. */
export function previewPayload(
  payload: Buffer | null | undefined,
  limitBytes: number,
  totalBytes: number = payload?.length ?? 0,
): Html {
  if (payload === null || payload === undefined) return html`<span class="muted">null</span>`;
  const shown = payload.subarray(0, limitBytes);
  const truncated = totalBytes > shown.length;
  const text = shown.toString('utf8');
  // A cut may split the last character; anything else undecodable, or control bytes, means binary.
  const checked = text.slice(0, truncated ? -1 : undefined);
  const isText = ![...checked].some(
    (c) => c === '\uFFFD' || (c < ' ' && c !== '\n' && c !== '\r' && c !== '\t'),
  );
  const body = isText ? text : (shown.toString('hex').match(/.{1,32}/g) ?? []).join('\n');
  return html`<pre class="payload">${body}</pre><p class="muted">${totalBytes} bytes${isText ? '' : ', shown as hex'}${truncated ? html`, <strong>truncated</strong> to the first ${shown.length}` : ''}</p>`;
}

/** Formats a duration in milliseconds for people. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** ISO time, or a dash. */
export function formatTime(date: Date | null | undefined): string {
  return date ? date.toISOString().replace('T', ' ').replace('Z', ' UTC') : '–';
}

/** A small inline SVG line chart of `values` (oldest first); no script, no external file. */
export function sparkline(values: readonly number[], label: string, width = 240, height = 48): Html {
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values
    .map(
      (value, index) =>
        `${(index * step).toFixed(1)},${(height - 2 - (value / max) * (height - 4)).toFixed(1)}`,
    )
    .join(' ');
  const last = values.at(-1) ?? 0;
  return html`<figure class="chart"><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${label}"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="${points}"/></svg><figcaption>${label}: <strong>${Number.isInteger(last) ? last : last.toFixed(1)}</strong> (max ${Number.isInteger(max) ? max : max.toFixed(1)})</figcaption></figure>`;
}
