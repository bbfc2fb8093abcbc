import type { Consumer, ConsumerConfig, Kafka } from 'kafkajs';
import { nowMs, type Services } from '../shared';
import { readyPrefix, resultPrefix } from './lines';

/** Parameters every worker gets. */
export interface WorkerParams extends Services {
  /** Schema of this run (onceflow's tables and the bench's own). */
  schema: string;
}

/** The worker's parameters, as the harness passed them. */
export function workerParams<P extends WorkerParams>(): P {
  return JSON.parse(process.env.BENCH_PARAMS ?? '{}') as P;
}

/** Tells the harness the worker is set up. */
export function announceReady(info: Record<string, unknown> = {}): void {
  process.stdout.write(`${readyPrefix}${JSON.stringify(info)}\n`);
}

/** Peak resident set size of this process so far, in MiB. */
export function peakRssMb(): number {
  return Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10;
}

/** Prints the result (with the process's peak RSS) and exits. */
export function finishWith(result: Record<string, unknown>): never {
  process.stdout.write(`${resultPrefix}${JSON.stringify({ ...result, peakRssMb: peakRssMb() })}\n`);
  process.exit(0);
}

/** Resolves on SIGTERM. */
export function terminated(): Promise<void> {
  return new Promise((resolve) => process.once('SIGTERM', () => resolve()));
}

/** What {@link observeConsumers} saw: when the group was joined, how far each partition got. */
export interface ConsumerProgress {
  /** When this process first joined its group (ms, {@link nowMs}). */
  joinedAt: number | undefined;
  /** When every partition reached its target (ms). */
  doneAt: number | undefined;
  /** Messages in processed batches. */
  messages: number;
  /** Resolves when every partition's processed batches reached its target end offset. */
  done: Promise<void>;
}

/**
 * Wraps a kafkajs client so that every consumer it creates reports its group join and the end of
 * each processed batch: the same measuring points for a plain kafkajs consumer and for one that a
 * library creates internally, without touching the library.
 */
export function observeConsumers(
  kafka: Kafka,
  topic: string,
  endOffsets: Record<number, string>,
): { kafka: Kafka; progress: ConsumerProgress } {
  const remaining = new Map(
    Object.entries(endOffsets)
      .filter(([, end]) => end !== '0')
      .map(([partition, end]) => [Number(partition), BigInt(end)]),
  );
  let markDone: () => void = () => undefined;
  const progress: ConsumerProgress = {
    joinedAt: undefined,
    doneAt: undefined,
    messages: 0,
    done: new Promise<void>((resolve) => {
      markDone = resolve;
    }),
  };
  const check = (): void => {
    if (remaining.size === 0 && progress.doneAt === undefined) {
      progress.doneAt = nowMs();
      markDone();
    }
  };
  check();
  const wrapped = new Proxy(kafka, {
    get(target, property, receiver) {
      if (property !== 'consumer') return Reflect.get(target, property, receiver);
      return (config: ConsumerConfig): Consumer => {
        const consumer = target.consumer(config);
        consumer.on(consumer.events.GROUP_JOIN, () => {
          progress.joinedAt ??= nowMs();
        });
        consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
          if (payload.topic !== topic) return;
          progress.messages += payload.batchSize;
          const end = remaining.get(payload.partition);
          if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) {
            remaining.delete(payload.partition);
            check();
          }
        });
        return consumer;
      };
    },
  });
  return { kafka: wrapped, progress };
}
