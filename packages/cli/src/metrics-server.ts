import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ComponentStatus } from '@onceflow/core';
import type { Registry } from 'prom-client';

/** What `--metrics-port` serves. */
export interface MetricsServerOptions {
  port: number;
  host: string;
  registry: Registry;
  /** The served component's status, for `/readyz`. */
  status: () => ComponentStatus;
}

/** A listening metrics server. */
export interface MetricsServer {
  /** `http://host:port`, with the port actually bound (for `--metrics-port 0`). */
  readonly url: string;
  close(): Promise<void>;
}

/** The status as JSON: the error as its code and message, dates as ISO strings. */
export function statusJson(status: ComponentStatus): string {
  return JSON.stringify({
    state: status.state,
    since: status.since.toISOString(),
    ...(status.lastError === undefined
      ? {}
      : {
          lastError: { code: status.lastError.code, message: status.lastError.message },
          lastErrorAt: status.lastErrorAt?.toISOString(),
        }),
  });
}

/**
 * Serves `/metrics` (Prometheus text format), `/healthz` (200 while the process answers) and `/readyz`
 * (200 when the component runs, 503 otherwise; the status as JSON either way).
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const send = (code: number, type: string, body: string): void => {
      response.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      response.end(request.method === 'HEAD' ? undefined : body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD');
      send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    if (path === '/healthz') send(200, 'application/json', '{"status":"ok"}\n');
    else if (path === '/readyz') {
      const status = options.status();
      send(status.state === 'running' ? 200 : 503, 'application/json', `${statusJson(status)}\n`);
    } else if (path === '/metrics')
      options.registry.metrics().then(
        (text) => send(200, options.registry.contentType, text),
        (error: unknown) => send(500, 'text/plain; charset=utf-8', `${String(error)}\n`),
      );
    else send(404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n');
  });
  // Keep-alive connections of a scraper must not hold up the process's exit.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
