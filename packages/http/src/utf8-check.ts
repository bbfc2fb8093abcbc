import { Transform, type TransformCallback } from 'node:stream';

/** An error a framework turns into a 400 without exposing anything else. */
export class InvalidUtf8Error extends Error {
  override readonly name = 'InvalidUtf8Error';
  readonly statusCode = 400;
  constructor() {
    super('request body is not valid UTF-8');
  }
}

/** True for content types whose bodies are text and must be valid UTF-8 (JSON, text/*). */
export function isTextContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json' || type.endsWith('+json') || type.startsWith('text/');
}

/**
 * Passes bytes through unchanged and fails on the first invalid UTF-8 sequence. Lenient decoding
 * would turn distinct invalid bodies into the same U+FFFD text, so two different requests could
 * share a fingerprint; such bodies are refused instead.
 */
export function createUtf8Check(): Transform {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      try {
        decoder.decode(chunk, { stream: true });
      } catch {
        callback(new InvalidUtf8Error());
        return;
      }
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      try {
        decoder.decode();
      } catch {
        callback(new InvalidUtf8Error());
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
