import { messageIdHeader } from '@onceflow/core';
import { createOnceflowAdmin, quoteIdentifier } from '@onceflow/postgres';
import type { Kafka } from 'kafkajs';
import type { Pool } from 'pg';
import {
  type ConsumerName,
  consumerNames,
  deadLetterTopicOf,
  type PipelineConfig,
  sourceTopicOf,
} from './config';
import { readWholeTopic, type TopicRecord } from './kafka-tools';

/** One line of the verification table. */
export interface VerificationRow {
  check: string;
  expected: string;
  actual: string;
  pass: boolean;
  /** How the numbers were obtained or what went wrong. */
  detail?: string;
}

/** Per-consumer duplicate accounting, from the topics and the effect tables. */
export interface DuplicateAccount {
  consumer: ConsumerName;
  /** Records on the consumer's topic. */
  records: number;
  /** Distinct `message-id`s among them. */
  distinctIds: number;
  /** Records beyond the first of their id: duplicates the consumer was handed. */
  delivered: number;
  /** Effects applied more than once: effect rows beyond one per distinct message handed to the consumer. */
  doubleEffects: number;
  /** Duplicates that changed nothing. */
  suppressed: number;
}

/** What the verifier found. */
export interface Verification {
  rows: VerificationRow[];
  passed: boolean;
  duplicates: DuplicateAccount[];
  latencyMs: { p50: number | null; p99: number | null; max: number | null; measured: number };
  deadLetters: { records: number; distinct: number; reason?: string; error?: string; orderId?: string };
}

/** What the verifier needs to know about the run besides the database and the topics. */
export interface VerifyInput {
  pool: Pool;
  kafka: Kafka;
  config: PipelineConfig;
  /** Order id by Idempotency-Key, from the clients' 2xx answers. */
  acceptedOrders: Map<string, string>;
  /** The poison order's Idempotency-Key. */
  poisonKey: string;
  /** Keys whose 2xx answers disagreed, and keys that never got one (from the load driver). */
  inconsistentKeys: string[];
  failedKeys: string[];
  /** True when chaos ran: then each consumer must have been handed duplicates, or the proof is empty. */
  chaos: boolean;
  /** With chaos: the faults planned and the faults that happened, so a run that dodged its chaos fails. */
  chaosCarriedOut?: ChaosAccount;
}

/** Faults by kind (`relay SIGKILLs`, `duplicates injected`...), planned and observed. */
export interface ChaosAccount {
  planned: Record<string, number>;
  actual: Record<string, number>;
}

interface EffectCounts {
  rows: number;
  distinctOrders: number;
  poisonRows: number;
}

function distinctIds(records: TopicRecord[]): number {
  return new Set(
    records.map((r) => r.headers[messageIdHeader]?.toString('utf8') ?? `${r.partition}/${r.offset}`),
  ).size;
}

/**
 * Computes the verification table from the database and the topics, never from the processes' own
 * counters: every order accepted exactly once, every effect exactly once per order, duplicates seen
 * and suppressed per consumer, one dead letter, an empty outbox, and end-to-end latency.
 */
export async function verifyPipeline(input: VerifyInput): Promise<Verification> {
  const { pool, kafka, config } = input;
  const s = quoteIdentifier(config.appSchema);
  const accepted = new Set(input.acceptedOrders.values());
  const acceptedIds = [...accepted];
  const poisonOrderId = input.acceptedOrders.get(input.poisonKey) ?? '00000000-0000-0000-0000-000000000000';
  const expectedEffects = accepted.size - (input.acceptedOrders.has(input.poisonKey) ? 1 : 0);
  const rows: VerificationRow[] = [];
  const add = (row: VerificationRow) => rows.push(row);

  const one = async <T>(text: string, values: unknown[] = []): Promise<T> =>
    (await pool.query(text, values)).rows[0] as T;

  // Orders and keys.
  const orders = await one<{ rows: number; known: number; keys_twice: number }>(
    `SELECT count(*)::int AS rows,
            count(*) FILTER (WHERE id = ANY($1::uuid[]))::int AS known,
            (count(*) - count(DISTINCT idempotency_key))::int AS keys_twice
       FROM ${s}.orders`,
    [acceptedIds],
  );
  add({
    check: 'orders = distinct accepted orders',
    expected: String(accepted.size),
    actual: String(orders.rows),
    pass: orders.rows === accepted.size && orders.known === accepted.size,
    detail: `${orders.known} of the accepted order ids are in the orders table`,
  });
  const keyProblems = orders.keys_twice + input.inconsistentKeys.length + input.failedKeys.length;
  add({
    check: 'one order per Idempotency-Key',
    expected: '0 keys with two orders',
    actual: `${keyProblems} keys`,
    pass: keyProblems === 0,
    detail: `${orders.keys_twice} keys with several order rows, ${input.inconsistentKeys.length} keys answered with different orders, ${input.failedKeys.length} keys never accepted`,
  });

  // Effects per order.
  const effects = async (table: string): Promise<EffectCounts> =>
    one<EffectCounts>(
      `SELECT count(*)::int AS "rows", count(DISTINCT order_id)::int AS "distinctOrders",
              count(*) FILTER (WHERE order_id = $1::uuid)::int AS "poisonRows"
         FROM ${s}.${quoteIdentifier(table, 'table')}`,
      [poisonOrderId],
    );
  const counts = {
    payments: await effects('payments'),
    ledger: await effects('ledger'),
    shipments: await effects('shipments'),
    notifications: await effects('notifications'),
  };
  const effectRow = (check: string, c: EffectCounts) =>
    add({
      check,
      expected: `${expectedEffects} (accepted ${accepted.size} - 1 poison)`,
      actual: String(c.rows),
      pass: c.rows === expectedEffects && c.distinctOrders === c.rows && c.poisonRows === 0,
      detail: `${c.distinctOrders} distinct orders, ${c.rows - c.distinctOrders} applied twice or more, ${c.poisonRows} for the poison order`,
    });
  effectRow('payments = accepted orders - poison', counts.payments);
  effectRow('ledger charges = accepted orders - poison', counts.ledger);
  effectRow('shipments = accepted orders - poison', counts.shipments);
  effectRow('notifications = accepted orders - poison', counts.notifications);

  const stock = await one<{ taken: number; ordered: number }>(
    `SELECT (SELECT coalesce(sum(initial_stock - stock), 0) FROM ${s}.inventory)::int AS taken,
            (SELECT coalesce(sum(quantity), 0) FROM ${s}.orders WHERE id <> $1::uuid)::int AS ordered`,
    [poisonOrderId],
  );
  add({
    check: 'inventory decremented exactly once per order',
    expected: `${stock.ordered} units`,
    actual: `${stock.taken} units`,
    pass: stock.taken === stock.ordered,
    detail: 'sum of (initial - current stock) against the quantities of the non-poison orders',
  });

  // Topics: duplicates handed to each consumer, and the effects they produced.
  const topicRecords = new Map<ConsumerName, TopicRecord[]>();
  for (const consumer of consumerNames)
    topicRecords.set(consumer, await readWholeTopic(kafka, sourceTopicOf(config, consumer)));
  const effectOf: Record<ConsumerName, EffectCounts> = {
    payments: counts.payments,
    fulfilment: counts.shipments,
    notifications: counts.notifications,
  };
  const duplicates: DuplicateAccount[] = [];
  for (const consumer of consumerNames) {
    const records = topicRecords.get(consumer)!;
    const distinct = distinctIds(records);
    const delivered = records.length - distinct;
    // A consumer's own double effects: its effect rows beyond one per distinct message it was handed
    // (dead-lettered messages have no effect). Upstream doubles arrive with ids of their own, so they
    // show in the effect-per-order rows above, not here.
    const deadLettered = distinctIds(
      await readWholeTopic(kafka, deadLetterTopicOf(sourceTopicOf(config, consumer))),
    );
    const handled = distinct - deadLettered;
    const c = effectOf[consumer];
    const doubleEffects = Math.max(
      0,
      c.rows - handled,
      consumer === 'payments' ? counts.ledger.rows - handled : 0,
    );
    const account: DuplicateAccount = {
      consumer,
      records: records.length,
      distinctIds: distinct,
      delivered,
      doubleEffects,
      suppressed: Math.max(0, delivered - doubleEffects),
    };
    duplicates.push(account);
    add({
      check: `${consumer}: duplicates delivered = suppressed`,
      expected: input.chaos ? 'delivered >= 1, double effects 0' : 'double effects 0',
      actual: `delivered ${delivered}, suppressed ${account.suppressed}, double effects ${doubleEffects}`,
      pass: doubleEffects === 0 && (!input.chaos || delivered > 0),
      detail: `${records.length} records, ${distinct} distinct message ids (${deadLettered} dead-lettered) on ${sourceTopicOf(config, consumer)}, ${c.rows} effect rows; redeliveries after crashes come on top`,
    });
  }

  // Completeness of the outbox: every committed event reached its topic.
  const published = {
    orderPlaced: distinctIds(topicRecords.get('payments')!),
    paymentCaptured: distinctIds(topicRecords.get('fulfilment')!),
    orderShipped: distinctIds(topicRecords.get('notifications')!),
  };
  const outbox = await createOnceflowAdmin({ pool: pool, schema: config.onceflowSchema }).outboxStatus();
  add({
    check: 'every committed event reached Kafka',
    expected: `${orders.rows}/${counts.payments.rows}/${counts.shipments.rows} ids, outbox empty`,
    actual: `${published.orderPlaced}/${published.paymentCaptured}/${published.orderShipped} ids, backlog ${outbox.backlog}, parked ${outbox.parked}`,
    pass:
      published.orderPlaced === orders.rows &&
      published.paymentCaptured === counts.payments.rows &&
      published.orderShipped === counts.shipments.rows &&
      outbox.backlog === 0 &&
      outbox.parked === 0,
    detail:
      'distinct message ids on order.placed / payment.captured / order.shipped against orders / payments / shipments rows',
  });

  // Dead letters: exactly the poison order, on the payments consumer's dead-letter topic, and nothing else.
  const dlq = await readWholeTopic(kafka, deadLetterTopicOf(config.topics.orderPlaced));
  const otherDlq =
    (await readWholeTopic(kafka, deadLetterTopicOf(config.topics.paymentCaptured))).length +
    (await readWholeTopic(kafka, deadLetterTopicOf(config.topics.orderShipped))).length;
  const first = dlq[0];
  const deadLetters: Verification['deadLetters'] = { records: dlq.length, distinct: distinctIds(dlq) };
  if (first) {
    const reason = first.headers['onceflow-dlq-reason']?.toString('utf8');
    const error = first.headers['onceflow-dlq-error']?.toString('utf8');
    if (reason !== undefined) deadLetters.reason = reason;
    if (error !== undefined) deadLetters.error = error;
    try {
      const orderId = (JSON.parse(first.value?.toString('utf8') ?? 'null') as { orderId?: string } | null)
        ?.orderId;
      if (orderId) deadLetters.orderId = orderId;
    } catch {
      // A value that is not JSON cannot be the poison order; the check below fails.
    }
  }
  add({
    check: 'dead letters = 1 (the poison order)',
    expected: '1, reason handler-failed',
    actual: `${deadLetters.distinct + otherDlq}${deadLetters.reason ? `, reason ${deadLetters.reason}` : ''}`,
    pass:
      deadLetters.distinct === 1 &&
      otherDlq === 0 &&
      deadLetters.orderId === poisonOrderId &&
      deadLetters.reason === 'handler-failed',
    detail: first
      ? `reason ${deadLetters.reason}: ${deadLetters.error}; ${dlq.length} record(s)`
      : 'no dead letter found',
  });

  // End-to-end latency: order row written by the API to notification row, both by the database clock.
  const latency = await one<{ p50: number | null; p99: number | null; max: number | null; measured: number }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99,
            max(ms) AS max, count(*)::int AS measured
       FROM (SELECT extract(epoch FROM min(n.created_at) - o.created_at) * 1000 AS ms
               FROM ${s}.orders o JOIN ${s}.notifications n ON n.order_id = o.id
              GROUP BY o.id, o.created_at) AS t`,
  );
  const round = (v: number | null) => (v === null ? null : Math.round(v));
  const latencyMs = {
    p50: round(latency.p50),
    p99: round(latency.p99),
    max: round(latency.max),
    measured: latency.measured,
  };
  add({
    check: 'end-to-end latency (order -> notification)',
    expected: `${expectedEffects} orders measured`,
    actual: `p50 ${latencyMs.p50 ?? '-'} ms, p99 ${latencyMs.p99 ?? '-'} ms`,
    pass: latency.measured === expectedEffects,
    detail: `${latency.measured} orders measured, max ${latencyMs.max ?? '-'} ms (database clock; includes the chaos)`,
  });

  if (input.chaosCarriedOut) {
    const { planned, actual } = input.chaosCarriedOut;
    const text = (counts: Record<string, number>) =>
      Object.entries(counts)
        .map(([kind, n]) => `${n} ${kind}`)
        .join(', ');
    add({
      check: 'chaos schedule carried out',
      expected: text(planned),
      actual: text(actual),
      pass: Object.entries(planned).every(([kind, n]) => (actual[kind] ?? 0) >= n),
      detail:
        'faults the seed planned against faults observed (process exits, records produced, client timeouts)',
    });
  }

  return { rows, passed: rows.every((r) => r.pass), duplicates, latencyMs, deadLetters };
}
