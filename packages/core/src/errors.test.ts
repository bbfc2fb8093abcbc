import { describe, expect, it, vi } from 'vitest';
import { isOnceflowError, OnceflowError, toOnceflowError } from './errors';

describe('OnceflowError', () => {
  it('is recognised by its brand also when it comes from a second copy of the package', async () => {
    vi.resetModules();
    const copy = await import('./errors');
    expect(copy.OnceflowError).not.toBe(OnceflowError);
    const foreign = new copy.OnceflowError('OF_STOPPED', 'stopped');
    expect(isOnceflowError(foreign)).toBe(true);
    expect(isOnceflowError(foreign, 'OF_STOPPED')).toBe(true);
    expect(isOnceflowError(foreign, 'OF_UNAVAILABLE')).toBe(false);
    expect(foreign instanceof OnceflowError).toBe(true);
    expect(copy.isOnceflowError(new OnceflowError('OF_STOPPED', 'stopped'))).toBe(true);
  });

  it('is not claimed by look-alikes without the brand', () => {
    const lookAlike = Object.assign(new Error('x'), { name: 'OnceflowError', code: 'OF_STOPPED' });
    expect(isOnceflowError(lookAlike)).toBe(false);
    expect(lookAlike instanceof OnceflowError).toBe(false);
    expect(isOnceflowError(null)).toBe(false);
    expect(isOnceflowError('OF_STOPPED')).toBe(false);
  });

  it('toOnceflowError keeps an onceflow error as it is and wraps anything else with its cause', () => {
    const own = new OnceflowError('OF_HANDLER_TIMEOUT', 'late', { retriable: true });
    expect(toOnceflowError(own, 'OF_HANDLER_FAILED', 'handler failed')).toBe(own);
    const cause = new TypeError('boom');
    const wrapped = toOnceflowError(cause, 'OF_HANDLER_FAILED', 'handler failed', {
      retriable: true,
      details: { offset: '3' },
    });
    expect(wrapped).toMatchObject({
      code: 'OF_HANDLER_FAILED',
      message: 'handler failed: boom',
      retriable: true,
      details: { offset: '3' },
    });
    expect(wrapped.cause).toBe(cause);
    expect(toOnceflowError('text', 'OF_UNAVAILABLE', 'lost').message).toBe('lost: text');
  });

  it('toOnceflowError names the Postgres error a wrapper hides, with its SQLSTATE', () => {
    // The shape of a node-postgres DatabaseError, wrapped as drizzle wraps it.
    const server = Object.assign(new Error('deadlock detected'), { code: '40P01', severity: 'ERROR' });
    const wrapper = new Error('Failed query: update "inventory" set "stock" = $1', { cause: server });
    const wrapped = toOnceflowError(wrapper, 'OF_UNAVAILABLE', 'inbox transaction failed', {
      details: { offset: '7' },
    });
    expect(wrapped.message).toBe(
      'inbox transaction failed: Failed query: update "inventory" set "stock" = $1 (caused by: deadlock detected, SQLSTATE 40P01)',
    );
    expect(wrapped.details).toEqual({ offset: '7', sqlState: '40P01' });
    expect(wrapped.cause).toBe(wrapper);
    expect(toOnceflowError(server, 'OF_UNAVAILABLE', 'failed').message).toBe(
      'failed: deadlock detected (SQLSTATE 40P01)',
    );
  });
});
