import type { BaseOptions } from '@platformatic/kafka';

/**
 * How to reach the cluster: @platformatic/kafka's client options (`bootstrapBrokers`, `clientId`,
 * `tls`, `sasl`, `connectTimeout`, `timeout`...), shared by every client the adapter creates. The
 * adapter derives each client's `clientId` from the one given here.
 */
export type PlatformaticKafkaConnection = Omit<BaseOptions, 'clientId'> & { clientId?: string };

/** The `clientId` of a client the adapter creates: the user's, with what the client is for appended. */
export function clientIdFor(connection: PlatformaticKafkaConnection, role: string): string {
  return `${connection.clientId ?? 'onceflow'}-${role}`;
}

/** True when `value` looks like {@link PlatformaticKafkaConnection}. */
export function isConnection(value: unknown): value is PlatformaticKafkaConnection {
  if (value === null || typeof value !== 'object') return false;
  const brokers = (value as { bootstrapBrokers?: unknown }).bootstrapBrokers;
  return Array.isArray(brokers) && brokers.length > 0;
}
