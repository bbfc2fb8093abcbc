import type { Logger } from '@onceflow/core';
import { logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { createKafkajsLogCreator } from './log-creator';

describe('kafkajs log creator', () => {
  it("forwards kafkajs's lines to the logger at the matching level, with kafkajs's fields and namespace", () => {
    const lines: unknown[][] = [];
    const logger = (bindings: Record<string, unknown>): Logger => {
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
        child: (more) => logger({ ...bindings, ...more }),
      };
    };
    const log = createKafkajsLogCreator(logger({}))(logLevel.INFO);
    const entry = (level: logLevel, message: string) =>
      log({
        namespace: 'Consumer',
        level,
        label: 'x',
        log: { timestamp: 't', message, groupId: 'g' },
      });
    entry(logLevel.ERROR, 'crashed');
    entry(logLevel.WARN, 'rebalancing');
    entry(logLevel.INFO, 'joined');
    entry(logLevel.DEBUG, 'fetch');
    expect(lines).toEqual([
      ['error', { component: 'kafkajs' }, { timestamp: 't', groupId: 'g', namespace: 'Consumer' }, 'crashed'],
      [
        'warn',
        { component: 'kafkajs' },
        { timestamp: 't', groupId: 'g', namespace: 'Consumer' },
        'rebalancing',
      ],
      ['info', { component: 'kafkajs' }, { timestamp: 't', groupId: 'g', namespace: 'Consumer' }, 'joined'],
      ['debug', { component: 'kafkajs' }, { timestamp: 't', groupId: 'g', namespace: 'Consumer' }, 'fetch'],
    ]);
  });
});
