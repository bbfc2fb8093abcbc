import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { OnceflowError } from '@onceflow/core';
import { Option } from 'commander';
import type { KafkaConfig, SASLOptions } from 'kafkajs';

/** SASL mechanisms the CLI can configure without code. */
export const saslMechanisms = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;

/** Kafka connection settings as given on the command line (commander's parsed options). */
export interface KafkaFlags {
  /** Comma-separated `host:port` list. */
  brokers?: string;
  clientId?: string;
  /** `--ssl` / `--no-ssl`. */
  ssl?: boolean;
  /** PEM file with the certificate authorities to trust; implies TLS. */
  sslCa?: string;
  saslMechanism?: string;
  saslUsername?: string;
  saslPassword?: string;
  /** JSON file with any of the settings above (see {@link KafkaConfigFile}). */
  kafkaConfig?: string;
}

/**
 * The `--kafka-config` file: a JSON object with a subset of kafkajs's `KafkaConfig`. `ssl.ca`,
 * `ssl.cert` and `ssl.key` are file paths, read when the CLI starts.
 */
export interface KafkaConfigFile {
  brokers?: string[];
  clientId?: string;
  ssl?:
    | boolean
    | { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean; servername?: string };
  sasl?: { mechanism: string; username: string; password: string };
  /** Milliseconds to wait for a broker connection. Default: kafkajs's (1000). */
  connectionTimeout?: number;
  /** Milliseconds to wait for a SASL handshake. Default: kafkajs's (10000). */
  authenticationTimeout?: number;
  /** Milliseconds to wait for a broker's answer. Default: kafkajs's (30000). */
  requestTimeout?: number;
}

const fileKeys = new Set([
  'brokers',
  'clientId',
  'ssl',
  'sasl',
  'connectionTimeout',
  'authenticationTimeout',
  'requestTimeout',
]);
const sslKeys = new Set(['ca', 'cert', 'key', 'rejectUnauthorized', 'servername']);

function invalid(message: string): OnceflowError {
  return new OnceflowError('OF_INVALID_OPTIONS', message);
}

function parseBoolean(value: string, name: string): boolean {
  const normalized = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(normalized)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(normalized)) return false;
  throw invalid(`${name}=${JSON.stringify(value)} is not a boolean: use true or false`);
}

function readConfigFile(path: string, readText: (path: string) => string): KafkaConfigFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readText(path));
  } catch (error) {
    throw invalid(
      `cannot read the Kafka config file ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw invalid(`the Kafka config file ${path} must hold one JSON object`);
  for (const key of Object.keys(parsed))
    if (!fileKeys.has(key))
      throw invalid(
        `the Kafka config file ${path} has an unknown key ${JSON.stringify(key)}: allowed are ${[...fileKeys].join(', ')}`,
      );
  return parsed as KafkaConfigFile;
}

function sasl(mechanism: string, username: string | undefined, password: string | undefined): SASLOptions {
  const lower = mechanism.toLowerCase();
  if (!(saslMechanisms as readonly string[]).includes(lower))
    throw invalid(
      `SASL mechanism ${JSON.stringify(mechanism)} is not supported by the CLI: use ${saslMechanisms.join(', ')}`,
    );
  if (!username || !password)
    throw invalid(
      `SASL ${lower} needs a username and a password: set KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or --sasl-username, --sasl-password, or sasl in --kafka-config)`,
    );
  return { mechanism: lower as 'plain', username, password };
}

/**
 * Builds kafkajs's client settings from the CLI's flags, then the environment (`KAFKA_BROKERS`,
 * `KAFKA_CLIENT_ID`, `KAFKA_SSL`, `KAFKA_SSL_CA`, `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`,
 * `KAFKA_SASL_PASSWORD`, `KAFKA_CONFIG`), then the config file; the first that names a setting wins.
 * Throws OF_INVALID_OPTIONS with what to change.
 */
export function resolveKafkaConfig(
  flags: KafkaFlags,
  env: NodeJS.ProcessEnv,
  options: { defaultClientId: string; readText?: (path: string) => string },
): KafkaConfig {
  const readText = options.readText ?? ((path: string) => readFileSync(path, 'utf8'));
  const configPath = flags.kafkaConfig ?? (env.KAFKA_CONFIG || undefined);
  const file = configPath === undefined ? {} : readConfigFile(configPath, readText);

  const brokerList = flags.brokers ?? (env.KAFKA_BROKERS || undefined);
  const brokers =
    brokerList === undefined
      ? (file.brokers ?? [])
      : brokerList
          .split(',')
          .map((broker) => broker.trim())
          .filter(Boolean);
  if (!Array.isArray(brokers) || brokers.length === 0 || brokers.some((b) => typeof b !== 'string' || !b))
    throw invalid(
      'Kafka brokers are required: pass --brokers, set KAFKA_BROKERS, or give brokers in --kafka-config',
    );

  const clientId =
    flags.clientId ?? (env.KAFKA_CLIENT_ID || undefined) ?? file.clientId ?? options.defaultClientId;

  let ssl: boolean | ConnectionOptions | undefined;
  if (typeof file.ssl === 'object' && file.ssl !== null) {
    for (const key of Object.keys(file.ssl))
      if (!sslKeys.has(key))
        throw invalid(
          `ssl.${key} in the Kafka config file is unknown: allowed are ${[...sslKeys].join(', ')}`,
        );
    const { ca, cert, key, ...rest } = file.ssl;
    ssl = {
      ...rest,
      ...(ca === undefined ? {} : { ca: readText(ca) }),
      ...(cert === undefined ? {} : { cert: readText(cert) }),
      ...(key === undefined ? {} : { key: readText(key) }),
    };
  } else if (file.ssl !== undefined) ssl = file.ssl === true;
  const sslFromEnv = env.KAFKA_SSL === undefined ? undefined : parseBoolean(env.KAFKA_SSL, 'KAFKA_SSL');
  const sslSwitch = flags.ssl ?? sslFromEnv;
  if (sslSwitch === false) ssl = false;
  else if (sslSwitch === true && !ssl) ssl = true;
  const caPath = flags.sslCa ?? (env.KAFKA_SSL_CA || undefined);
  if (caPath !== undefined && sslSwitch !== false)
    ssl = { ...(typeof ssl === 'object' ? ssl : {}), ca: readText(caPath) };

  const mechanism = flags.saslMechanism ?? (env.KAFKA_SASL_MECHANISM || undefined) ?? file.sasl?.mechanism;
  const config: KafkaConfig = { clientId, brokers };
  if (ssl) config.ssl = ssl;
  if (mechanism !== undefined)
    config.sasl = sasl(
      mechanism,
      flags.saslUsername ?? (env.KAFKA_SASL_USERNAME || undefined) ?? file.sasl?.username,
      flags.saslPassword ?? (env.KAFKA_SASL_PASSWORD || undefined) ?? file.sasl?.password,
    );
  for (const key of ['connectionTimeout', 'authenticationTimeout', 'requestTimeout'] as const) {
    const value = file[key];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value <= 0)
      throw invalid(`${key} in the Kafka config file must be a positive integer of milliseconds`);
    config[key] = value;
  }
  return config;
}

/** The Kafka connection flags of every command that talks to Kafka. */
export function kafkaOptions(defaultClientId: string): Option[] {
  return [
    new Option('--brokers <list>', 'comma-separated Kafka brokers (default: $KAFKA_BROKERS)'),
    new Option('--client-id <id>', `Kafka client id (default: $KAFKA_CLIENT_ID, else ${defaultClientId})`),
    new Option('--ssl', 'connect to Kafka over TLS (default: $KAFKA_SSL)'),
    new Option('--no-ssl', 'connect to Kafka without TLS, whatever $KAFKA_SSL or the config file say'),
    new Option(
      '--ssl-ca <file>',
      'PEM file of the certificate authorities to trust; implies --ssl (default: $KAFKA_SSL_CA)',
    ),
    new Option(
      '--sasl-mechanism <name>',
      `SASL mechanism: ${saslMechanisms.join(', ')} (default: $KAFKA_SASL_MECHANISM)`,
    ),
    new Option('--sasl-username <name>', 'SASL user name (default: $KAFKA_SASL_USERNAME)'),
    new Option(
      '--sasl-password <secret>',
      'SASL password; visible in the process list, so prefer $KAFKA_SASL_PASSWORD',
    ),
    new Option(
      '--kafka-config <file>',
      'JSON file with brokers, clientId, ssl, sasl and timeouts; flags and environment win over it (default: $KAFKA_CONFIG)',
    ),
  ];
}
