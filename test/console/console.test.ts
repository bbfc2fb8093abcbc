import { type StartedConsole, startConsole } from '@onceflow/console';
import { createOutboxRelay } from '@onceflow/kafkajs';
import { createOnceflowAdmin, enqueue } from '@onceflow/postgres';
import { describe, expect, it } from 'vitest';
import { createInboxDatabase, startConsumer, waitFor } from '../inbox/helpers';
import { createTopic, testKafka, uniqueName } from '../support';
import { launchBrowser } from './browser';

const token = 'console-test-token-0123456789';

async function signIn(page: import('playwright-core').Page, console: StartedConsole): Promise<void> {
  await page.goto(`${console.url}login`);
  await page.fill('input[name="token"]', token);
  await page.click('button[type="submit"]');
  await page.waitForSelector('text=signed in as');
}

describe('onceflow console in headless Chromium', () => {
  it('the overview shows an outbox backlog and, refreshed live, shows it drain once a relay runs', async () => {
    await using db = await createInboxDatabase();
    const topic = uniqueName('console_orders');
    await createTopic(topic, 3);
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      for (let i = 0; i < 400; i++)
        await enqueue(client, { topic, key: `order-${i % 20}`, value: { n: i } }, { schema: db.schema });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await using started = await startConsole({
      pool: db.pool,
      schema: db.schema,
      port: 0,
      token,
      refreshIntervalMs: 500,
    });
    await using browser = await launchBrowser();
    const { page } = browser;
    await page.goto(started.url);
    await expect.poll(() => page.textContent('[data-card="outbox backlog"]')).toBe('400');
    expect(await page.textContent('#topics')).toContain(topic);
    await browser.screenshot('overview-backlog');
    await using _relay = await createOutboxRelay({
      pool: db.pool,
      kafka: testKafka(),
      schema: db.schema,
    }).start();
    // No reload: the page follows the server-sent events.
    await expect.poll(() => page.textContent('[data-card="outbox backlog"]'), { timeout: 60_000 }).toBe('0');
    await expect.poll(() => page.textContent('#relays'), { timeout: 10_000 }).toMatch(/\d/);
    // Throughput comes from Postgres's table statistics, which backends report about once a second.
    await expect
      .poll(() => page.textContent('figure:has(svg[aria-label="published / s"]) figcaption'), {
        timeout: 30_000,
      })
      .not.toContain('(max 1)');
    await browser.screenshot('overview');
  });

  it('a dead-lettered message is found by its id, redriven from the page, and processed exactly once', async () => {
    await using db = await createInboxDatabase();
    const topic = uniqueName('console_payments');
    const consumer = uniqueName('payments');
    await createTopic(topic, 1);
    const messageId = 'order-42-payment';
    let poisoned = true;
    await using _relay = await createOutboxRelay({
      pool: db.pool,
      kafka: testKafka(),
      schema: db.schema,
    }).start();
    await using _consumer = await startConsumer(db, {
      consumer,
      topics: [topic],
      retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 10, jitter: 0 },
      handler: async (message, { client }) => {
        if (poisoned && message.id === messageId) throw new Error('card processor rejected the amount');
        await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [message.id]);
      },
    });
    await enqueue(
      db.pool,
      { topic, key: 'order-42', value: { amount: 4200 }, id: messageId },
      { schema: db.schema },
    );
    await enqueue(
      db.pool,
      { topic, key: 'order-43', value: { amount: 4300 }, id: 'order-43-payment' },
      { schema: db.schema },
    );
    const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
    await waitFor('the dead letter', async () => (await admin.listDeadLetters({ consumer })).length === 1);
    await waitFor('the healthy message', async () => (await effectsOf(db, 'order-43-payment')) === 1);

    const kafkaAdmin = testKafka().admin();
    await kafkaAdmin.connect();
    await using started = await startConsole({
      pool: db.pool,
      schema: db.schema,
      port: 0,
      token,
      kafka: kafkaAdmin,
    });
    await using _kafkaAdmin = { [Symbol.asyncDispose]: () => kafkaAdmin.disconnect() };
    await using browser = await launchBrowser();
    const { page } = browser;
    await signIn(page, started);
    await page.goto(`${started.url}where`);
    await page.fill('input[name="id"]', messageId);
    await page.click('button:has-text("Find")');
    const row = page.locator(`tr[data-consumer="${consumer}"]`);
    expect(await row.locator('[data-state]').textContent()).toBe('dead-lettered');
    expect(await page.textContent('#step-published')).toContain('Published');
    await browser.screenshot('where-dead-lettered');
    await page.click('a:has-text("inspect / redrive")');
    expect(await page.textContent('main')).toContain('card processor rejected the amount');
    await browser.screenshot('dead-letter');
    await page.goto(`${started.url}dead-letters`);
    await browser.screenshot('dead-letters');

    poisoned = false;
    await page.goto(`${started.url}dead-letters`);
    await page.check(`tr[data-message-id="${messageId}"] input[name="id"]`);
    await page.click('button:has-text("Redrive selected")');
    expect(await page.textContent('main')).toContain('Redrive 1 dead letter?');
    await browser.screenshot('redrive-confirm');
    await page.click('button:has-text("Redrive")');
    expect(await page.textContent('[role="status"]')).toContain('1 dead letter redriven');
    await waitFor('the redriven message', async () => (await effectsOf(db, messageId)) === 1);
    await waitFor(
      'the redrive to settle',
      async () => (await admin.listDeadLetters({ consumer }))[0]?.state === 'redriven',
    );
    await page.goto(`${started.url}where?id=${messageId}`);
    expect(await row.locator('[data-state]').textContent()).toBe('processed');
    await browser.screenshot('where');
    // The overview compares the consumer's stored position with Kafka's high watermark. The relay
    // publishes in transactions, whose commit marker takes the last offset: caught up shows 0 or 1.
    await page.goto(started.url);
    const lagRow = page.locator('#consumers tr', { hasText: consumer });
    await expect.poll(() => lagRow.locator('td').nth(5).textContent(), { timeout: 30_000 }).toMatch(/^[01]$/);
    await browser.screenshot('overview-consumers');
    // A second redrive of the same letter is refused by the admin (it is no longer dead), so the effect stays single.
    const again = await page.request.post(`${started.url}dead-letters/redrive`, { form: {} });
    expect(again.status()).toBe(403);
    expect(await effectsOf(db, messageId)).toBe(1);
  });

  it('a write without a session, or without the CSRF token of its session, is refused and changes nothing', async () => {
    await using db = await createInboxDatabase();
    const topic = uniqueName('console_parked');
    await enqueue(db.pool, { topic, key: 'k', value: 'too large', id: 'parked-1' }, { schema: db.schema });
    await db.pool.query(
      `UPDATE "${db.schema}".outbox SET parked_at = now(), last_error = 'MESSAGE_TOO_LARGE: the broker refused it' WHERE event_id = 'parked-1'`,
    );
    await using started = await startConsole({ pool: db.pool, schema: db.schema, port: 0, token });
    await using browser = await launchBrowser();
    const { page } = browser;
    await page.goto(`${started.url}parked`);
    expect(await page.isDisabled('button:has-text("Unpark selected")')).toBe(true);
    await browser.screenshot('parked');
    const anonymous = await page.request.post(`${started.url}parked/unpark`, {
      form: { id: 'parked-1', confirm: 'yes' },
    });
    expect(anonymous.status()).toBe(401);
    await signIn(page, started);
    const forged = await page.request.post(`${started.url}parked/unpark`, {
      form: { id: 'parked-1', confirm: 'yes', _csrf: 'forged' },
    });
    expect(forged.status()).toBe(403);
    const crossSite = await page.request.post(`${started.url}parked/unpark`, {
      form: { id: 'parked-1', confirm: 'yes' },
      headers: { origin: 'http://evil.example' },
    });
    expect(crossSite.status()).toBe(403);
    const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
    expect((await admin.listParkedEvents()).map((event) => event.eventId)).toEqual(['parked-1']);
    // Through the page (session, CSRF token, confirmation) the same write goes through.
    await page.goto(`${started.url}parked`);
    await page.check('input[value="parked-1"]');
    await page.click('button:has-text("Unpark selected")');
    await page.click('button:has-text("Unpark")');
    expect(await page.textContent('[role="status"]')).toContain('1 event unparked');
    expect(await admin.listParkedEvents()).toEqual([]);
  });

  it('a payload holding <script> and an onerror attribute is shown as text and never runs', async () => {
    await using db = await createInboxDatabase();
    const topic = uniqueName('console_xss');
    const attack = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
    await enqueue(
      db.pool,
      { topic, key: `<b>${attack}</b>`, value: attack, id: 'xss-1' },
      { schema: db.schema },
    );
    await db.pool.query(
      `INSERT INTO "${db.schema}".idempotency_keys (request_id, scope, key, fingerprint, route, state, recovery_point, response_status, expires_at)
       VALUES (gen_random_uuid(), 'tenant-7', 'charge-2026-0042', '\\x00', 'POST /charges', 'completed', 'finished', 201, now() + interval '1 day')`,
    );
    await using started = await startConsole({ pool: db.pool, schema: db.schema, port: 0, token });
    await using browser = await launchBrowser();
    const { page } = browser;
    await page.goto(`${started.url}where?id=xss-1`);
    const payloads = page.locator('pre.payload');
    expect(await payloads.nth(1).textContent()).toBe(attack);
    expect(await page.locator('main img, main script, main b').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
    await browser.screenshot('where-waiting');
    await page.goto(`${started.url}keys?scope=tenant-7&key=charge-2026-0042`);
    expect(await page.textContent('main')).toContain('finished');
    await browser.screenshot('keys');
  });
});

async function effectsOf(
  db: { pool: import('pg').Pool; schema: string },
  messageId: string,
): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${db.schema}".effects WHERE message_id = $1`,
    [messageId],
  );
  return rows[0]!.n;
}
