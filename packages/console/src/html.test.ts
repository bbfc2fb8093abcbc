import { describe, expect, it } from 'vitest';
import { escapeHtml, html, previewPayload } from './html';

describe('console html', () => {
  it('escapes every interpolated string, attribute quotes included, and passes nested markup as is', () => {
    const evil = `<script>alert("x")</script>' onerror=\`y\``;
    expect(html`<td title="${evil}">${evil}</td>`.text).toBe(
      `<td title="${escapeHtml(evil)}">${escapeHtml(evil)}</td>`,
    );
    expect(escapeHtml(evil)).not.toMatch(/[<>"'`]/);
    expect(html`<p>${html`<b>${'<i>'}</b>`}</p>`.text).toBe('<p><b>&lt;i&gt;</b></p>');
    expect(html`${['<a>', html`<b>`, 3, null, undefined, false]}`.text).toBe('&lt;a&gt;<b>3');
  });

  it('cuts a payload at the preview size and says so; shows binary as hex', () => {
    const text = previewPayload(Buffer.from('x'.repeat(10)), 4).text;
    expect(text).toContain('>xxxx</pre>');
    expect(text).toContain('10 bytes');
    expect(text).toContain('truncated');
    const binary = previewPayload(Buffer.from([0, 1, 2, 255]), 16).text;
    expect(binary).toContain('000102ff');
    expect(binary).toContain('shown as hex');
    expect(previewPayload(Buffer.from('<script>'), 64).text).toContain('&lt;script&gt;');
  });
});
