import { Transform, type TransformCallback } from 'node:stream';
import { TextDecoder } from 'node:util';
import { OnceflowError } from '@onceflow/core';
import { problemTypes } from './problem';

/**
 * A body refused for invalid UTF-8: OF_IDEMPOTENCY_REJECTED (problem `body-invalid`), with the
 * `statusCode` frameworks turn into a 400 without exposing anything else.
 */
export class InvalidUtf8Error extends OnceflowError {
  readonly statusCode = problemTypes['body-invalid'].status;
  constructor() {
    super('OF_IDEMPOTENCY_REJECTED', 'request body is not valid UTF-8', {
      details: { status: problemTypes['body-invalid'].status, problem: 'body-invalid' },
    });
  }
}

function mediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  return contentType.split(';', 1)[0]!.trim().toLowerCase();
}

/** True for content types whose bodies are text and must be valid UTF-8 (JSON, text/*). */
export function isTextContentType(contentType: string | undefined): boolean {
  const type = mediaType(contentType);
  if (!type) return false;
  return type === 'application/json' || type.endsWith('+json') || type.startsWith('text/');
}

/** True for `application/x-www-form-urlencoded`, the bodies Stripe's SDKs send. */
export function isFormContentType(contentType: string | undefined): boolean {
  return mediaType(contentType) === 'application/x-www-form-urlencoded';
}

/**
 * How a body is checked before it is parsed: `text` bodies must be valid UTF-8; `form` bodies must
 * be too, both as sent and once their `%XX` escapes are decoded; other bodies stay bytes.
 */
export function utf8CheckOf(contentType: string | undefined): 'text' | 'form' | undefined {
  if (isTextContentType(contentType)) return 'text';
  if (isFormContentType(contentType)) return 'form';
  return undefined;
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/**
 * Decodes the `%XX` escapes of a form body chunk by chunk, into the bytes a form parser turns into
 * text. A `%` without two hex digits stays as it is, as in the WHATWG form parser; it is ASCII, so
 * it never changes whether the decoded bytes are valid UTF-8.
 */
class PercentDecoder {
  /** `%` and at most one hex digit carried over from the previous chunk. */
  private pending: number[] = [];

  decode(chunk: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(chunk.length + this.pending.length);
    let length = 0;
    const push = (byte: number): void => {
      out[length++] = byte;
    };
    for (const byte of chunk) {
      const pending = this.pending;
      if (pending.length === 0) {
        if (byte === 0x25) pending.push(byte);
        else push(byte);
        continue;
      }
      const digit = hexValue(byte);
      if (digit >= 0 && pending.length === 1) {
        pending.push(byte);
        continue;
      }
      if (digit >= 0) {
        push(hexValue(pending[1]!) * 16 + digit);
        this.pending = [];
        continue;
      }
      // Not an escape: the `%` (and digit) stand for themselves; `byte` starts afresh.
      for (const kept of pending) push(kept);
      this.pending = byte === 0x25 ? [byte] : [];
      if (byte !== 0x25) push(byte);
    }
    return out.subarray(0, length);
  }

  end(): Buffer {
    const rest = Buffer.from(this.pending);
    this.pending = [];
    return rest;
  }
}

/** A fatal UTF-8 decoder over the body's bytes, and for forms over their percent-decoded bytes too. */
class Utf8Validator {
  private readonly raw = new TextDecoder('utf-8', { fatal: true });
  private readonly decoded: TextDecoder | undefined;
  private readonly percent: PercentDecoder | undefined;

  constructor(kind: 'text' | 'form') {
    if (kind === 'form') {
      this.decoded = new TextDecoder('utf-8', { fatal: true });
      this.percent = new PercentDecoder();
    }
  }

  /** Throws InvalidUtf8Error on the first invalid sequence. */
  write(chunk: Uint8Array): void {
    try {
      this.raw.decode(chunk, { stream: true });
      if (this.percent) this.decoded!.decode(this.percent.decode(chunk), { stream: true });
    } catch {
      throw new InvalidUtf8Error();
    }
  }

  /** Throws InvalidUtf8Error when the body ends inside a sequence. */
  end(): void {
    try {
      this.raw.decode();
      if (this.percent) this.decoded!.decode(this.percent.end());
    } catch {
      throw new InvalidUtf8Error();
    }
  }
}

/**
 * Passes bytes through unchanged and fails on the first invalid UTF-8 sequence. Lenient decoding
 * would turn distinct invalid bodies into the same U+FFFD text, so two different requests could
 * share a fingerprint; such bodies are refused instead. For forms (`kind: 'form'`) the bytes that
 * `%XX` escapes stand for are checked as well, since form parsers decode them leniently too.
 */
export function createUtf8Check(kind: 'text' | 'form' = 'text'): Transform {
  const validator = new Utf8Validator(kind);
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      try {
        validator.write(chunk);
      } catch (error) {
        callback(error as Error);
        return;
      }
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      try {
        validator.end();
      } catch (error) {
        callback(error as Error);
        return;
      }
      callback();
    },
  });
}

/** Decodes a whole body strictly; throws {@link InvalidUtf8Error} on invalid UTF-8. */
export function decodeUtf8Strict(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidUtf8Error();
  }
}

/**
 * Parses a whole form body into its fields (a name sent several times gives an array, in order),
 * after the same checks as {@link createUtf8Check} with `form`; throws {@link InvalidUtf8Error}.
 */
export function parseFormStrict(bytes: Buffer): Record<string, string | string[]> {
  const validator = new Utf8Validator('form');
  validator.write(bytes);
  validator.end();
  // No prototype, so a field named `__proto__` is a field like any other.
  const fields: Record<string, string | string[]> = Object.create(null);
  for (const [name, value] of new URLSearchParams(bytes.toString('utf8'))) {
    const previous = fields[name];
    if (previous === undefined) fields[name] = value;
    else if (Array.isArray(previous)) previous.push(value);
    else fields[name] = [previous, value];
  }
  return fields;
}
