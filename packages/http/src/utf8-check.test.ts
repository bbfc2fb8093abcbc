import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { createUtf8Check, InvalidUtf8Error, parseFormStrict, utf8CheckOf } from './utf8-check';

async function check(kind: 'text' | 'form', chunks: Array<string | number[]>): Promise<string> {
  const source = Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : Buffer.from(c))));
  return text(source.pipe(createUtf8Check(kind)));
}

describe('UTF-8 checks of request bodies', () => {
  it('knows which content types are checked as text and as forms', () => {
    expect(utf8CheckOf('application/json; charset=utf-8')).toBe('text');
    expect(utf8CheckOf('application/x-www-form-urlencoded')).toBe('form');
    expect(utf8CheckOf('Application/X-WWW-Form-Urlencoded; charset=UTF-8')).toBe('form');
    expect(utf8CheckOf('application/octet-stream')).toBeUndefined();
  });

  it('a form body passes through unchanged when its bytes and its %XX escapes are valid UTF-8, across chunk boundaries', async () => {
    const body = 'name=Jos%C3%A9&note=caf\u00e9+100%&pct=%25FF';
    expect(await check('form', [body])).toBe(body);
    // Escapes and multi-byte characters cut between chunks.
    expect(await check('form', ['name=%C', '3%A', '9&x=', [0xc3], [0xa9]])).toBe('name=%C3%A9&x=é');
  });

  it('a form body is refused for invalid raw bytes and for escapes of invalid bytes, which parsers decode alike', async () => {
    for (const chunks of [
      [[0x6e, 0x3d, 0xff]],
      [[0x6e, 0x3d, 0xfe]],
      ['n=%FF'],
      ['n=%fe'],
      ['n=%C3'],
      ['n=%C3%'],
      ['n=%C3&m=%A9'],
      [[0x6e, 0x3d, 0xc3], '%A9'],
      ['n=%E2%82'],
    ] as Array<Array<string | number[]>>)
      await expect(check('form', chunks), JSON.stringify(chunks)).rejects.toBeInstanceOf(InvalidUtf8Error);
    // As text, escapes are just characters.
    expect(await check('text', ['n=%FF'])).toBe('n=%FF');
  });

  it('parseFormStrict gives fields (repeated names as arrays), and refuses what the stream check refuses', () => {
    const fields = parseFormStrict(Buffer.from('a=1&b=x+y&a=2&__proto__=p&c=%E2%9C%93'));
    expect(Object.entries(fields)).toEqual([
      ['a', ['1', '2']],
      ['b', 'x y'],
      ['__proto__', 'p'],
      ['c', '✓'],
    ]);
    expect(Object.getPrototypeOf(fields)).toBeNull();
    expect(() => parseFormStrict(Buffer.from('a=%FF'))).toThrow(InvalidUtf8Error);
    expect(() => parseFormStrict(Buffer.from([0x61, 0x3d, 0xfe]))).toThrow(InvalidUtf8Error);
  });
});
