import { readFileSync } from 'node:fs';
import { isOnceflowError } from '@onceflow/core';
import { describe, expect, it } from 'vitest';
import { resolveKafkaConfig } from './kafka-settings';

const files: Record<string, string> = { '/ca.pem': 'CA PEM', '/etc/kafka/ca.pem': 'README CA' };
const readText = (path: string): string => {
  const text = files[path];
  if (text === undefined) throw new Error(`ENOENT: ${path}`);
  return text;
};
const resolve = (flags: Parameters<typeof resolveKafkaConfig>[0], env: NodeJS.ProcessEnv = {}) =>
  resolveKafkaConfig(flags, env, { defaultClientId: 'onceflow-relay', readText });

function failure(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(isOnceflowError(error, 'OF_INVALID_OPTIONS')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected OF_INVALID_OPTIONS');
}

describe('Kafka settings of the CLI', () => {
  it('flags win over the environment, which wins over the config file', () => {
    files['/kafka.json'] = JSON.stringify({ brokers: ['file:9092'], clientId: 'from-file' });
    expect(resolve({ kafkaConfig: '/kafka.json' })).toEqual({
      brokers: ['file:9092'],
      clientId: 'from-file',
    });
    expect(
      resolve({ kafkaConfig: '/kafka.json' }, { KAFKA_BROKERS: 'env:1, env:2', KAFKA_CLIENT_ID: 'env' }),
    ).toEqual({ brokers: ['env:1', 'env:2'], clientId: 'env' });
    expect(
      resolve(
        { brokers: 'flag:9092', clientId: 'flag', kafkaConfig: '/kafka.json' },
        { KAFKA_BROKERS: 'env:1' },
      ),
    ).toEqual({ brokers: ['flag:9092'], clientId: 'flag' });
  });

  it('TLS and SASL come from the environment variables the README names', () => {
    expect(
      resolve(
        {},
        {
          KAFKA_BROKERS: 'b:9094',
          KAFKA_SSL: 'true',
          KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
          KAFKA_SASL_USERNAME: 'relay',
          KAFKA_SASL_PASSWORD: 'secret',
        },
      ),
    ).toEqual({
      brokers: ['b:9094'],
      clientId: 'onceflow-relay',
      ssl: true,
      sasl: { mechanism: 'scram-sha-512', username: 'relay', password: 'secret' },
    });
    expect(resolve({ sslCa: '/ca.pem' }, { KAFKA_BROKERS: 'b:1' }).ssl).toEqual({ ca: 'CA PEM' });
    expect(resolve({ ssl: false }, { KAFKA_BROKERS: 'b:1', KAFKA_SSL: 'true' }).ssl).toBeUndefined();
  });

  it("the README's --kafka-config example resolves to TLS with the CA file, SCRAM and the timeouts", () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const example =
      /<!-- doc-test: covered-by packages\/cli\/src\/kafka-settings\.test\.ts -->\n```json\n([\s\S]*?)```/.exec(
        readme,
      );
    expect(example, 'the README block marked for this test').not.toBeNull();
    files['/readme-kafka.json'] = example![1]!;
    expect(resolve({ kafkaConfig: '/readme-kafka.json' })).toEqual({
      brokers: ['kafka-1.internal:9094', 'kafka-2.internal:9094'],
      clientId: 'onceflow-relay',
      ssl: { ca: 'README CA' },
      sasl: { mechanism: 'scram-sha-512', username: 'relay', password: 'from-a-secret-store' },
      connectionTimeout: 3000,
      requestTimeout: 30000,
    });
  });

  it('invalid settings are refused with what to change', () => {
    expect(failure(() => resolve({}))).toMatch(/pass --brokers, set KAFKA_BROKERS/);
    expect(failure(() => resolve({ brokers: 'b:1', saslMechanism: 'gssapi' }))).toMatch(
      /use plain, scram-sha-256, scram-sha-512/,
    );
    expect(failure(() => resolve({ brokers: 'b:1', saslMechanism: 'plain' }))).toMatch(/KAFKA_SASL_USERNAME/);
    expect(failure(() => resolve({}, { KAFKA_BROKERS: 'b:1', KAFKA_SSL: 'maybe' }))).toMatch(
      /use true or false/,
    );
    files['/typo.json'] = JSON.stringify({ brokers: ['b:1'], sasl_mechanism: 'plain' });
    expect(failure(() => resolve({ kafkaConfig: '/typo.json' }))).toMatch(/unknown key "sasl_mechanism"/);
    expect(failure(() => resolve({ kafkaConfig: '/missing.json' }))).toMatch(
      /cannot read the Kafka config file/,
    );
    files['/timeout.json'] = JSON.stringify({ brokers: ['b:1'], requestTimeout: -1 });
    expect(failure(() => resolve({ kafkaConfig: '/timeout.json' }))).toMatch(
      /positive integer of milliseconds/,
    );
  });
});
