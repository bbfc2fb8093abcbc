import { setTimeout as sleep } from 'node:timers/promises';
import type { OrderPlan } from './chaos';

/** What the clients saw. */
export interface LoadStats {
  /** Orders whose key got a 2xx answer. */
  accepted: number;
  /** Requests sent, retries and in-flight copies included. */
  requests: number;
  /** Answers replayed from a stored response (`Idempotent-Replayed: true`). */
  replayed: number;
  /** 409 answers: the same key was still being processed. */
  conflicts: number;
  /** Requests the client abandoned after its timeout. */
  timeouts: number;
  /** Other non-2xx answers that were retried (429, 503, 5xx) or network errors. */
  retriedErrors: number;
  /** Keys whose 2xx answers named different orders: each is a broken Idempotency-Key guarantee. */
  inconsistentKeys: string[];
  /** Keys that got no 2xx answer before the client gave up. */
  failedKeys: string[];
}

/** The outcome of the load: the orders the API accepted, by Idempotency-Key. */
export interface LoadResult {
  stats: LoadStats;
  /** Order id by Idempotency-Key, for every accepted order. */
  orderIds: Map<string, string>;
  /** When each order was accepted, ms since the run started, in acceptance order. */
  acceptedAtMs: number[];
}

/** Options of {@link driveLoad}. */
export interface LoadOptions {
  /** Base URL of the Orders API. */
  baseUrl: string;
  orders: OrderPlan[];
  /** Prefix of the Idempotency-Keys (unique per run). */
  keyPrefix: string;
  /** Orders in flight at once. */
  concurrency: number;
  /**
   * Orders started per second, evenly spaced (an open loop, capped by `concurrency`); undefined:
   * each client starts its next order as soon as the last one was accepted. Default: undefined.
   */
  rate?: number;
  startedAt: number;
  /** Called after each accepted order with the number accepted so far (chaos triggers hang on it). */
  onAccepted?: (accepted: number) => void;
  /** Attempts per request copy before the key is given up. Default: 60. */
  maxAttempts?: number;
}

interface Answer {
  status: number;
  orderId?: string;
  replayed: boolean;
  retryAfterMs: number;
}

async function send(
  options: LoadOptions,
  key: string,
  plan: OrderPlan,
  timeout: OrderPlan['timeout'] | undefined,
): Promise<Answer | 'timeout' | 'error'> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': key };
  if (timeout) headers['x-simulated-latency-ms'] = String(timeout.serverDelayMs);
  try {
    const response = await fetch(`${options.baseUrl}/orders`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        customer: plan.customer,
        sku: plan.sku,
        quantity: plan.quantity,
        amountCents: plan.amountCents,
      }),
      signal: AbortSignal.timeout(timeout ? timeout.timeoutMs : 30_000),
    });
    const text = await response.text();
    let orderId: string | undefined;
    if (response.ok) orderId = (JSON.parse(text) as { id?: string }).id;
    const retryAfter = Number(response.headers.get('retry-after') ?? '0');
    return {
      status: response.status,
      ...(orderId ? { orderId } : {}),
      replayed: response.headers.get('idempotent-replayed') === 'true',
      retryAfterMs: Number.isFinite(retryAfter) ? retryAfter * 1000 : 0,
    };
  } catch (error) {
    const name = (error as Error).name;
    return name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'error';
  }
}

/**
 * Sends every planned order to `POST /orders` the way unreliable clients do: some give up after a
 * timeout and retry with the same Idempotency-Key, some send the same request several times at once,
 * and every client retries 409, 429 and 5xx answers until it gets a 2xx.
 */
export async function driveLoad(options: LoadOptions): Promise<LoadResult> {
  const stats: LoadStats = {
    accepted: 0,
    requests: 0,
    replayed: 0,
    conflicts: 0,
    timeouts: 0,
    retriedErrors: 0,
    inconsistentKeys: [],
    failedKeys: [],
  };
  const orderIds = new Map<string, string>();
  const acceptedAtMs: number[] = [];
  const maxAttempts = options.maxAttempts ?? 60;

  // One logical client: retries until a 2xx, only the first attempt may carry the planned timeout.
  async function client(key: string, plan: OrderPlan): Promise<string | undefined> {
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      stats.requests++;
      const answer = await send(options, key, plan, attempt === 1 ? plan.timeout : undefined);
      if (answer === 'timeout') {
        stats.timeouts++;
        continue;
      }
      if (answer === 'error') {
        stats.retriedErrors++;
        await sleep(Math.min(50 * attempt, 500));
        continue;
      }
      if (answer.status >= 200 && answer.status < 300 && answer.orderId) {
        if (answer.replayed) stats.replayed++;
        return answer.orderId;
      }
      if (answer.status === 409) stats.conflicts++;
      else if (answer.status === 429 || answer.status === 503 || answer.status >= 500) stats.retriedErrors++;
      else throw new Error(`POST /orders answered ${answer.status} for key ${key}: the load is malformed`);
      await sleep(Math.min(Math.max(answer.retryAfterMs / 10, 20), 200));
    }
    return undefined;
  }

  async function placeOrder(plan: OrderPlan): Promise<void> {
    const key = `${options.keyPrefix}-${plan.index}`;
    const ids = await Promise.all(Array.from({ length: plan.copies }, () => client(key, plan)));
    const got = ids.filter((id): id is string => id !== undefined);
    if (got.length === 0) {
      stats.failedKeys.push(key);
      return;
    }
    if (new Set(got).size > 1) stats.inconsistentKeys.push(key);
    orderIds.set(key, got[0]!);
    stats.accepted++;
    acceptedAtMs.push(Date.now() - options.startedAt);
    options.onAccepted?.(stats.accepted);
  }

  let next = 0;
  const paceStart = Date.now();
  const workers = Array.from({ length: options.concurrency }, async () => {
    while (next < options.orders.length) {
      const index = next++;
      const plan = options.orders[index]!;
      if (options.rate !== undefined) {
        const wait = paceStart + (index * 1000) / options.rate - Date.now();
        if (wait > 0) await sleep(wait);
      }
      await placeOrder(plan);
    }
  });
  await Promise.all(workers);
  return { stats, orderIds, acceptedAtMs };
}
