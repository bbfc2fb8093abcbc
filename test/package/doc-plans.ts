// How the README programs run (see doc-blocks.ts): for each doc project, which files are programs, in
// what order they run against the real services, and what they must achieve. consumer.test.ts compiles
// the projects on the installed packages and hands each plan a DocPlanContext.
import { expect } from 'vitest';

/** A long-running README program (a relay, a consumer, a server). */
export interface DocProcess {
  /** The output line that matched the readiness pattern. */
  readonly line: string;
  output(): string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** What a plan may do; every program runs with DATABASE_URL, KAFKA_BROKERS and ORDERS_TOPIC of its own. */
export interface DocPlanContext {
  /** The topic name handed to the programs as ORDERS_TOPIC (unique to this run). */
  readonly ordersTopic: string;
  /** Runs a program to its end; fails unless it exits 0. Resolves with its output. */
  run(file: string, env?: Record<string, string>): Promise<string>;
  /** Starts a program and waits for an output line matching `ready`. */
  start(file: string, ready: RegExp, env?: Record<string, string>): Promise<DocProcess>;
  /** Runs a command of the installed packages (`npx <args>`) in the project's folder. */
  npx(args: string[]): Promise<string>;
  query<T>(sql: string, values?: unknown[]): Promise<T[]>;
  /** Produces JSON messages with a `message-id` header to `topic` (created if missing). */
  produce(topic: string, messages: Array<{ id: string; key: string; value: unknown }>): Promise<void>;
  /** Writes an extra file into the project's folder (for counter-cases). */
  write(file: string, text: string): void;
  read(file: string): string;
  waitFor(probe: () => Promise<boolean>, what: string): Promise<void>;
}

/** A doc project's plan. */
export interface DocPlan {
  /** Files imported by programs (or read by tools), not run themselves. */
  modules: string[];
  /** Files the plan runs. */
  programs: string[];
  run(ctx: DocPlanContext): Promise<void>;
}

async function post(url: string, body: unknown, key: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key, ...headers },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    replayed: response.headers.get('idempotent-replayed'),
    body: await response.text(),
  };
}

function urlOf(process: DocProcess): string {
  return /(https?:\/\/\S+)/.exec(process.line)![1]!;
}

export const docPlans: Record<string, DocPlan> = {
  // README.md: the shop.
  shop: {
    modules: ['config.ts', 'schema.ts', 'drizzle.config.ts'],
    programs: ['setup.ts', 'publish.ts', 'relay.ts', 'consume.ts', 'http.ts'],
    async run(ctx) {
      expect(await ctx.run('setup.ts')).toMatch(/onceflow schema onceflow at version \d+/);
      const relay = await ctx.start('relay.ts', /^relay \S+ running/m);
      const consumer = await ctx.start('consume.ts', /payments consumer running/);
      const api = await ctx.start('http.ts', /orders API on http/, { PORT: '0' });
      const placed = /order (\S+) placed/.exec(await ctx.run('publish.ts'))![1]!;
      const order = { id: 'readme-order-1', amountCents: 4200 };
      const first = await post(`${urlOf(api)}/orders`, order, 'key-1', { 'x-tenant': 'tenant-a' });
      const retry = await post(`${urlOf(api)}/orders`, order, 'key-1', { 'x-tenant': 'tenant-a' });
      expect(first.status).toBe(201);
      expect(retry).toMatchObject({ status: 201, replayed: 'true', body: first.body });
      const payments = () =>
        ctx.query<{ order_id: string; amount_cents: number }>(
          'SELECT order_id, amount_cents FROM payments ORDER BY amount_cents',
        );
      await ctx.waitFor(async () => (await payments()).length >= 2, 'two payments');
      expect(await payments()).toEqual([
        { order_id: placed, amount_cents: 1500 },
        { order_id: 'readme-order-1', amount_cents: 4200 },
      ]);
      for (const running of [api, consumer, relay]) expect(await running.stop(), running.output()).toBe(0);

      // The drizzle-kit recipe: generate for the shop's schema emits its tables and none of onceflow's…
      await ctx.npx(['drizzle-kit', 'generate', '--config', 'drizzle.config.ts']);
      const generated = ctx.read('drizzle');
      expect(generated).toMatch(/CREATE TABLE "orders"/);
      expect(generated).toMatch(/CREATE TABLE "payments"/);
      expect(generated).not.toMatch(/onceflow|outbox|inbox|idempotency/);
      // …while a schema file that re-exports onceflow's tables would make it create them.
      ctx.write(
        'schema-reexporting.ts',
        "export * from './schema.js';\nimport { outboxTables } from '@onceflow/postgres';\nexport const { outbox } = outboxTables();\n",
      );
      ctx.write(
        'drizzle-reexporting.config.ts',
        "import { defineConfig } from 'drizzle-kit';\nexport default defineConfig({ dialect: 'postgresql', schema: './schema-reexporting.ts', out: './drizzle-reexporting' });\n",
      );
      await ctx.npx(['drizzle-kit', 'generate', '--config', 'drizzle-reexporting.config.ts']);
      expect(ctx.read('drizzle-reexporting')).toMatch(/CREATE TABLE "onceflow"\."outbox"/);
    },
  },

  // packages/inbox/README.md
  inbox: {
    modules: [],
    programs: ['consume.ts', 'consume-batch.ts'],
    async run(ctx) {
      await ctx.npx(['onceflow', 'migrate']);
      await ctx.query('CREATE TABLE payments (order_id text PRIMARY KEY, amount_cents integer NOT NULL)');
      const orders = [
        { id: 'm-1', key: 'o-1', value: { orderId: 'o-1', amountCents: 100 } },
        { id: 'm-2', key: 'o-2', value: { orderId: 'o-2', amountCents: 200 } },
        { id: 'm-1', key: 'o-1', value: { orderId: 'o-1', amountCents: 100 } }, // the same message again
      ];
      await ctx.produce(ctx.ordersTopic, orders);
      const count = async () =>
        (await ctx.query<{ n: number }>('SELECT count(*)::int AS n FROM payments'))[0]!.n;
      for (const program of ['consume.ts', 'consume-batch.ts']) {
        const consumer = await ctx.start(program, /consumer running/);
        await ctx.waitFor(async () => (await count()) >= 2, `${program}: two payments`);
        const name = program === 'consume.ts' ? 'payments' : 'payments-batch';
        const positions = () =>
          ctx.query<{ n: number }>(
            'SELECT coalesce(sum(next_offset), 0)::int AS n FROM onceflow.inbox_position WHERE consumer = $1',
            [name],
          );
        await ctx.waitFor(async () => (await positions())[0]!.n >= 3, `${program}: all three offsets passed`);
        expect(await consumer.stop(), consumer.output()).toBe(0);
        expect(await count(), `${program}: the duplicate changed nothing`).toBe(2);
        await ctx.query('TRUNCATE payments');
      }
      const events = await ctx.query<{ topic: string }>('SELECT topic FROM onceflow.outbox');
      expect(events.map((event) => event.topic)).toEqual(['payments', 'payments']);
    },
  },

  // packages/http/README.md
  http: {
    modules: [],
    programs: ['charges.ts', 'rides.ts', 'node-server.ts'],
    async run(ctx) {
      await ctx.npx(['onceflow', 'migrate']);
      await ctx.query('CREATE TABLE charges (id serial PRIMARY KEY, amount integer NOT NULL)');
      await ctx.query(
        'CREATE TABLE rides (id serial PRIMARY KEY, request_id uuid NOT NULL UNIQUE, origin text NOT NULL)',
      );
      const charges = await ctx.start('charges.ts', /charges API on http/, { PORT: '0' });
      const charge = await post(`${urlOf(charges)}/charges`, { amount: 42 }, 'c-1', { 'x-tenant': 't' });
      const chargeRetry = await post(`${urlOf(charges)}/charges`, { amount: 42 }, 'c-1', { 'x-tenant': 't' });
      expect(charge.status).toBe(201);
      expect(chargeRetry).toMatchObject({ status: 201, replayed: 'true', body: charge.body });
      expect(await ctx.query('SELECT amount FROM charges')).toEqual([{ amount: 42 }]);

      const rides = await ctx.start('rides.ts', /rides API on http/, { PORT: '0' });
      const ride = await post(`${urlOf(rides)}/rides`, { origin: 'Lisbon', amount: 900 }, 'r-1');
      const rideRetry = await post(`${urlOf(rides)}/rides`, { origin: 'Lisbon', amount: 900 }, 'r-1');
      expect(ride.status).toBe(201);
      expect(JSON.parse(ride.body)).toMatchObject({ rideId: 1, chargeId: expect.stringMatching(/^ch_/) });
      expect(rideRetry).toMatchObject({ status: 201, replayed: 'true', body: ride.body });

      const server = await ctx.start('node-server.ts', /orders API on http/, { PORT: '0' });
      const order = await post(`${urlOf(server)}/orders`, { id: 'n-1' }, 'n-1', { 'x-tenant': 't' });
      const orderRetry = await post(`${urlOf(server)}/orders`, { id: 'n-1' }, 'n-1', { 'x-tenant': 't' });
      expect(order.status).toBe(201);
      expect(orderRetry).toMatchObject({ status: 201, replayed: 'true' });

      for (const running of [charges, rides, server]) expect(await running.stop(), running.output()).toBe(0);
      const events = await ctx.query<{ topic: string }>('SELECT topic FROM onceflow.outbox ORDER BY topic');
      expect(events.map((event) => event.topic)).toEqual(['charges', 'orders', 'rides']);
    },
  },
};
