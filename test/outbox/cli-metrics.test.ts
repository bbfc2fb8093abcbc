import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTcpProxy } from '../faults/support/tcp-proxy';
import { createTestDatabase, createTopic, databaseUrl, spawnTs, uniqueName } from '../support';
import { enqueueCommitted, waitForDrain } from './helpers';

const cli = fileURLToPath(new URL('../../packages/cli/bin/onceflow.js', import.meta.url));

const waitOptions = { timeout: 60_000, interval: 100 };

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

describe('onceflow relay --metrics-port', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse())
      await Promise.resolve()
        .then(step)
        .catch(() => undefined);
  });

  it('serves /healthz, /readyz (503 while Postgres is unreachable, 200 once the relay runs) and /metrics counting what it published', async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const topic = uniqueName('cli-metrics');
    await createTopic(topic, 2);
    const events = Array.from({ length: 25 }, (_, i) => ({ topic, key: `k${i % 5}`, value: `v${i}` }));
    await enqueueCommitted(db, events);
    // Postgres behind a proxy that refuses every connection until healed.
    const url = new URL(databaseUrl());
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    cleanup.push(() => proxy.close());
    proxy.refuse();
    url.port = String(proxy.port);

    const relay = spawnTs(cli, {
      args: [
        'relay',
        '--schema',
        db.schema,
        '--database-url',
        url.toString(),
        '--metrics-port',
        '0',
        '--metrics-interval-ms',
        '300',
      ],
    });
    cleanup.push(() => relay.kill('SIGKILL'));
    const line = await relay.waitForLine(/^metrics on /);
    const base = /^metrics on (http:\/\/[^/]+)\/metrics/.exec(line)![1]!;

    expect(await get(`${base}/healthz`)).toMatchObject({ status: 200 });
    await vi.waitFor(async () => {
      const ready = await get(`${base}/readyz`);
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.body)).toMatchObject({
        state: 'waiting-for-database',
        lastError: { code: 'OF_UNAVAILABLE' },
      });
    }, waitOptions);
    // Still alive while not ready.
    expect(await get(`${base}/healthz`)).toMatchObject({ status: 200 });

    proxy.heal();
    await relay.waitForLine(/^relay .* started/);
    await vi.waitFor(async () => {
      const ready = await get(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body)).toMatchObject({ state: 'running' });
    }, waitOptions);
    await waitForDrain(db);
    const labels = `schema="${db.schema}"`;
    let metrics = '';
    await vi.waitFor(async () => {
      metrics = (await get(`${base}/metrics`)).body;
      expect(metrics).toContain(`onceflow_relay_events_published_total{${labels}} 25`);
      expect(metrics).toContain(`onceflow_relay_backlog_events{${labels}} 0`);
    }, waitOptions);
    expect(metrics).toMatch(new RegExp(`onceflow_relay_lanes_owned\\{${labels}\\} [1-9]`));
    expect(metrics).toMatch(
      /onceflow_component_state\{component="outbox relay",name="[^"]+",state="running"\} 1/,
    );
    expect(metrics).toMatch(/onceflow_relay_publish_duration_seconds_count\{schema="[^"]+"\} [1-9]/);
    // The process's own metrics come along.
    expect(metrics).toContain('process_cpu_user_seconds_total');
    expect(await get(`${base}/nothing`)).toMatchObject({ status: 404 });

    expect(await relay.kill('SIGTERM')).toBe(0);
    expect(relay.output()).toMatch(/relay stopped after publishing 25 events/);
  });
});
