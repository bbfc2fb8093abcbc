import type { Logger } from '@onceflow/core';
import { type logCreator, logLevel } from 'kafkajs';

/**
 * A kafkajs `logCreator` that forwards kafkajs's own log lines to an onceflow (pino-shaped) logger,
 * at the matching level, with kafkajs's namespace and fields merged in:
 *
 * ```ts
 * const kafka = new Kafka({ brokers, logCreator: createKafkajsLogCreator(logger) });
 * ```
 *
 * kafkajs still filters by its own `logLevel` (INFO by default) before anything reaches the logger.
 */
export function createKafkajsLogCreator(logger: Logger): logCreator {
  const kafkajsLogger = logger.child({ component: 'kafkajs' });
  return () =>
    ({ namespace, level, log }) => {
      const { message, ...fields } = log;
      const bindings = { ...fields, namespace };
      switch (level) {
        case logLevel.ERROR:
          kafkajsLogger.error(bindings, message);
          break;
        case logLevel.WARN:
          kafkajsLogger.warn(bindings, message);
          break;
        case logLevel.INFO:
          kafkajsLogger.info(bindings, message);
          break;
        default:
          kafkajsLogger.debug(bindings, message);
      }
    };
}
