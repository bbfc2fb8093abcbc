import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';
import { type ConsumerName, consumerNames } from './config';
import { poisonCustomer } from './events';
import { skus } from './schema';

/** How one order is sent. */
export interface OrderPlan {
  /** Position in the load, 0-based. */
  index: number;
  customer: string;
  sku: string;
  quantity: number;
  amountCents: number;
  /** The client gives up after `timeoutMs` while the server is slowed by `serverDelayMs`, then retries with the same key. */
  timeout?: { timeoutMs: number; serverDelayMs: number };
  /** Copies of the request sent at once with the same key (duplicates in flight); 1 for none. */
  copies: number;
}

/** A fault the runner triggers once `atOrder` orders have been accepted. */
export type ChaosAction =
  | { kind: 'kill-relay'; atOrder: number; restartAfterMs: number }
  | { kind: 'kill-consumer'; atOrder: number; consumer: ConsumerName; restartAfterMs: number }
  | { kind: 'inject-duplicates'; atOrder: number; consumer: ConsumerName; count: number };

/** A consumer that SIGKILLs itself in the middle of a batch, inside its handler's open transaction. */
export interface SelfKill {
  consumer: ConsumerName;
  /** It dies while handling this many-th new message since it started (1-based). */
  atMessage: number;
}

/** Everything a run does, derived from its seed alone. */
export interface ChaosSchedule {
  seed: number;
  chaos: boolean;
  orders: OrderPlan[];
  /** Index of the poison order (refused by the payment provider, dead-lettered). */
  poisonIndex: number;
  actions: ChaosAction[];
  selfKill: SelfKill | undefined;
}

function between(rng: RandomGenerator, from: number, to: number): number {
  return uniformInt(rng, Math.min(from, to), Math.max(from, to));
}

function chance(rng: RandomGenerator, percent: number): boolean {
  return uniformInt(rng, 1, 100) <= percent;
}

/**
 * Draws a run's orders and faults from `seed` (xoroshiro128+), so the same seed gives the same
 * schedule. With `chaos` off the load is the same but nothing is slowed, doubled, killed or injected;
 * the poison order is part of the load either way.
 */
export function planRun(options: { seed: number; orders: number; chaos: boolean }): ChaosSchedule {
  const { seed, chaos } = options;
  const total = options.orders;
  if (!Number.isInteger(total) || total < 10)
    throw new Error(`orders must be an integer >= 10 (got ${total})`);
  const rng = xoroshiro128plus(seed);
  const poisonIndex = between(rng, Math.floor(total * 0.1), Math.floor(total * 0.6));
  const orders: OrderPlan[] = [];
  for (let index = 0; index < total; index++) {
    const plan: OrderPlan = {
      index,
      customer: index === poisonIndex ? poisonCustomer : `customer-${between(rng, 1, 500)}`,
      sku: skus[between(rng, 0, skus.length - 1)]!,
      quantity: between(rng, 1, 3),
      amountCents: between(rng, 500, 50_000),
      copies: 1,
    };
    if (chaos && chance(rng, 4)) plan.timeout = { timeoutMs: between(rng, 20, 60), serverDelayMs: 150 };
    if (chaos && chance(rng, 4)) plan.copies = between(rng, 2, 4);
    orders.push(plan);
  }
  const actions: ChaosAction[] = [];
  let selfKill: SelfKill | undefined;
  if (chaos) {
    const at = (from: number, to: number) => between(rng, Math.floor(total * from), Math.floor(total * to));
    actions.push({ kind: 'kill-relay', atOrder: at(0.15, 0.3), restartAfterMs: between(rng, 300, 1500) });
    actions.push({ kind: 'kill-relay', atOrder: at(0.55, 0.7), restartAfterMs: between(rng, 300, 1500) });
    const crashing = consumerNames[between(rng, 0, consumerNames.length - 1)]!;
    const others = consumerNames.filter((c) => c !== crashing);
    selfKill = { consumer: crashing, atMessage: at(0.2, 0.45) };
    actions.push({
      kind: 'kill-consumer',
      atOrder: at(0.5, 0.8),
      consumer: others[between(rng, 0, others.length - 1)]!,
      restartAfterMs: between(rng, 300, 1500),
    });
    for (const consumer of consumerNames)
      actions.push({
        kind: 'inject-duplicates',
        atOrder: at(0.3, 0.9),
        consumer,
        count: between(rng, Math.max(3, Math.floor(total * 0.01)), Math.max(5, Math.floor(total * 0.03))),
      });
    actions.sort((a, b) => a.atOrder - b.atOrder);
  }
  return { seed, chaos, orders, poisonIndex, actions, selfKill };
}

/** One line per fault, for the console and the report. */
export function describeSchedule(schedule: ChaosSchedule): string[] {
  const lines = [
    `seed ${schedule.seed}: ${schedule.orders.length} orders, poison order #${schedule.poisonIndex}`,
  ];
  if (!schedule.chaos) return [...lines, 'chaos off'];
  const timeouts = schedule.orders.filter((o) => o.timeout).length;
  const doubled = schedule.orders.filter((o) => o.copies > 1).length;
  lines.push(
    `${timeouts} client timeouts retried with the same key; ${doubled} requests sent 2-4 times at once`,
  );
  if (schedule.selfKill)
    lines.push(
      `${schedule.selfKill.consumer} SIGKILLs itself mid-batch at its message #${schedule.selfKill.atMessage}`,
    );
  for (const action of schedule.actions) {
    if (action.kind === 'kill-relay')
      lines.push(`at order ${action.atOrder}: SIGKILL the relay, restart after ${action.restartAfterMs} ms`);
    else if (action.kind === 'kill-consumer')
      lines.push(
        `at order ${action.atOrder}: SIGKILL ${action.consumer}, restart after ${action.restartAfterMs} ms`,
      );
    else
      lines.push(
        `at order ${action.atOrder}: re-produce ${action.count} published records into ${action.consumer}'s topic`,
      );
  }
  return lines;
}
