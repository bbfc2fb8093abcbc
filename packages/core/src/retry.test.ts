import { describe, expect, it } from 'vitest';
import { isConnectionError, isTransientDatabaseError } from './retry';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('database error classes', () => {
  it('a terminated backend, a server shutting down or starting, and class 08 are connection errors', () => {
    for (const code of ['57P01', '57P02', '57P03', '08006', '08001', '08P01'])
      expect(isConnectionError(withCode(code)), code).toBe(true);
  });

  it('socket failures and node-postgres connection messages are connection errors, also as a cause', () => {
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND'])
      expect(isConnectionError(withCode(code)), code).toBe(true);
    for (const message of [
      'Connection terminated unexpectedly',
      'Connection terminated',
      'Client has encountered a connection error and is not queryable',
      'timeout exceeded when trying to connect',
      'timeout expired',
    ])
      expect(isConnectionError(new Error(message)), message).toBe(true);
    expect(isConnectionError(new Error('wrapped', { cause: withCode('57P01') }))).toBe(true);
  });

  it('errors about the work itself are not connection errors', () => {
    for (const code of ['23505', '42P01', '40001', '28P01', '3D000'])
      expect(isConnectionError(withCode(code)), code).toBe(false);
    expect(isConnectionError(new Error('handler failed'))).toBe(false);
    expect(isConnectionError('Connection terminated')).toBe(false);
    expect(isConnectionError(undefined)).toBe(false);
  });

  it('serialization failures and deadlocks stay the transient class, connection errors are not in it', () => {
    expect(isTransientDatabaseError(withCode('40001'))).toBe(true);
    expect(isTransientDatabaseError(withCode('40P01'))).toBe(true);
    expect(isTransientDatabaseError(withCode('57P01'))).toBe(false);
  });
});
