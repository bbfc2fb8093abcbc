import { validateIdentifier } from '@onceflow/postgres';

/**
 * Everything a pipeline process needs to find its services and its names. Every name is configurable
 * so that several runs (the demo, its tests) can share one Kafka and one Postgres without touching
 * each other's schemas, topics or consumer groups.
 */
export interface PipelineConfig {
  /** Kafka bootstrap brokers. Env `KAFKA_BROKERS` (comma separated). Default: `127.0.0.1:19092`. */
  brokers: string[];
  /** Postgres connection string. Env `DATABASE_URL`. Default: `postgres://postgres@127.0.0.1:5432/test`. */
  databaseUrl: string;
  /** Prefix of every default name below. Env `DEMO_NAMESPACE`. Default: `order_pipeline`. */
  namespace: string;
  /** Schema of onceflow's tables (inbox, outbox, idempotency keys). Env `ONCEFLOW_SCHEMA`. Default: `<namespace>_onceflow`. */
  onceflowSchema: string;
  /** Schema of the application's tables (orders, payments...). Env `APP_SCHEMA`. Default: `<namespace>_app`. */
  appSchema: string;
  /** Topic names. Env `TOPIC_ORDER_PLACED`, `TOPIC_PAYMENT_CAPTURED`, `TOPIC_ORDER_SHIPPED`. Default: `<namespace>.order.placed` etc. */
  topics: { orderPlaced: string; paymentCaptured: string; orderShipped: string };
  /** Consumer groups. Env `GROUP_PAYMENTS`, `GROUP_FULFILMENT`, `GROUP_NOTIFICATIONS`. Default: `<namespace>.payments` etc. */
  groups: { payments: string; fulfilment: string; notifications: string };
  /** Partitions of each topic the demo creates. Env `TOPIC_PARTITIONS`. Default: 3. */
  partitions: number;
}

/** The consumers of the pipeline, in the order an order flows through them. */
export const consumerNames = ['payments', 'fulfilment', 'notifications'] as const;

/** One of {@link consumerNames}. */
export type ConsumerName = (typeof consumerNames)[number];

/** The dead-letter topic of a source topic (the inbox consumer's default naming). */
export function deadLetterTopicOf(topic: string): string {
  return `${topic}.dlq`;
}

/** Every topic the pipeline uses, dead-letter topics included. */
export function allTopics(config: PipelineConfig): string[] {
  const sources = [config.topics.orderPlaced, config.topics.paymentCaptured, config.topics.orderShipped];
  return [...sources, ...sources.map(deadLetterTopicOf)];
}

/** The topic each consumer reads. */
export function sourceTopicOf(config: PipelineConfig, consumer: ConsumerName): string {
  if (consumer === 'payments') return config.topics.orderPlaced;
  if (consumer === 'fulfilment') return config.topics.paymentCaptured;
  return config.topics.orderShipped;
}

/** Reads the configuration from environment variables, applying the documented defaults. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): PipelineConfig {
  const namespace = env.DEMO_NAMESPACE ?? 'order_pipeline';
  validateIdentifier(namespace, 'DEMO_NAMESPACE');
  const partitions = Number(env.TOPIC_PARTITIONS ?? 3);
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new Error(`TOPIC_PARTITIONS must be a positive integer (got ${env.TOPIC_PARTITIONS})`);
  const config: PipelineConfig = {
    brokers: (env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',').map((b) => b.trim()),
    databaseUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    namespace,
    onceflowSchema: env.ONCEFLOW_SCHEMA ?? `${namespace}_onceflow`,
    appSchema: env.APP_SCHEMA ?? `${namespace}_app`,
    topics: {
      orderPlaced: env.TOPIC_ORDER_PLACED ?? `${namespace}.order.placed`,
      paymentCaptured: env.TOPIC_PAYMENT_CAPTURED ?? `${namespace}.payment.captured`,
      orderShipped: env.TOPIC_ORDER_SHIPPED ?? `${namespace}.order.shipped`,
    },
    groups: {
      payments: env.GROUP_PAYMENTS ?? `${namespace}.payments`,
      fulfilment: env.GROUP_FULFILMENT ?? `${namespace}.fulfilment`,
      notifications: env.GROUP_NOTIFICATIONS ?? `${namespace}.notifications`,
    },
    partitions,
  };
  validateIdentifier(config.onceflowSchema, 'ONCEFLOW_SCHEMA');
  validateIdentifier(config.appSchema, 'APP_SCHEMA');
  return config;
}

/** The environment that hands `config` to a pipeline process (the inverse of {@link loadConfig}). */
export function configEnv(config: PipelineConfig): Record<string, string> {
  return {
    KAFKA_BROKERS: config.brokers.join(','),
    DATABASE_URL: config.databaseUrl,
    DEMO_NAMESPACE: config.namespace,
    ONCEFLOW_SCHEMA: config.onceflowSchema,
    APP_SCHEMA: config.appSchema,
    TOPIC_ORDER_PLACED: config.topics.orderPlaced,
    TOPIC_PAYMENT_CAPTURED: config.topics.paymentCaptured,
    TOPIC_ORDER_SHIPPED: config.topics.orderShipped,
    GROUP_PAYMENTS: config.groups.payments,
    GROUP_FULFILMENT: config.groups.fulfilment,
    GROUP_NOTIFICATIONS: config.groups.notifications,
    TOPIC_PARTITIONS: String(config.partitions),
  };
}
