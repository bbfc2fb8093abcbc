import { describe, expect, it } from 'vitest';
import { isOnceflowError, OnceflowError } from './errors';
import { type Logger, silentLogger } from './logger';
import { reportError, resolveLogger, resolveRetryPolicy } from './options';
import { defaultRetryPolicy } from './retry';

function recordingLogger(lines: unknown[][] = [], bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string) =>
    (...args: unknown[]): void => {
      lines.push([level, bindings, ...args]);
    };
  return {
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}

describe('shared options', () => {
  it('a partial retry policy keeps the defaults of the fields left out', () => {
    expect(resolveRetryPolicy('c', { maxAttempts: 2 }, defaultRetryPolicy)).toEqual({
      ...defaultRetryPolicy,
      maxAttempts: 2,
    });
    expect(resolveRetryPolicy('c', undefined, defaultRetryPolicy)).toEqual(defaultRetryPolicy);
  });

  it('an impossible retry policy is refused at construction, naming the field', () => {
    expect(() => resolveRetryPolicy('relay', { maxAttempts: 0 }, defaultRetryPolicy)).toThrow(
      /relay: retry: maxAttempts/,
    );
    expect(() => resolveRetryPolicy('relay', 'fast' as never, defaultRetryPolicy)).toThrow(/retry must be/);
  });

  it('without a logger everything goes to the silent logger; a logger gets a child with the bindings', () => {
    expect(resolveLogger('c', undefined, { component: 'x' })).toBe(silentLogger);
    const lines: unknown[][] = [];
    resolveLogger('c', recordingLogger(lines), { component: 'inbox' }).info('hello');
    expect(lines).toEqual([['info', { component: 'inbox' }, 'hello']]);
  });

  it('something without pino methods is refused as a logger', () => {
    let thrown: unknown;
    try {
      resolveLogger('inbox consumer', { info: () => undefined } as never, {});
    } catch (error) {
      thrown = error;
    }
    expect(isOnceflowError(thrown, 'OF_INVALID_OPTIONS')).toBe(true);
    expect(String(thrown)).toMatch(/missing: fatal, error, warn, debug, trace, child/);
  });

  it('a reported error reaches the logger and the hook, and neither can break the caller by throwing', () => {
    const lines: unknown[][] = [];
    const seen: OnceflowError[] = [];
    const error = new OnceflowError('OF_UNAVAILABLE', 'db down', { details: { topic: 't' } });
    reportError({ logger: recordingLogger(lines), onError: (e) => seen.push(e) }, 'warn', error);
    expect(seen).toEqual([error]);
    expect(lines).toEqual([['warn', {}, { topic: 't', err: error, code: 'OF_UNAVAILABLE' }, 'db down']]);
    const throwing = () => {
      throw new Error('hook failed');
    };
    const broken = { ...recordingLogger(), warn: throwing };
    expect(() => reportError({ logger: broken, onError: throwing }, 'warn', error)).not.toThrow();
  });
});
