import { request } from 'node:http';

/** A response as received on the wire: status, lower-case headers and the exact body bytes. */
export interface WireResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Sends one request with node:http (no client-side normalisation of headers or body). */
export function send(
  url: string,
  options: {
    method?: string;
    path: string;
    /** An array value is sent as that many header lines. */
    headers?: Record<string, string | string[]>;
    body?: Buffer | string;
  },
): Promise<WireResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(options.path, url);
    const req = request(
      target,
      { method: options.method ?? 'POST', headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** POSTs JSON with an Idempotency-Key and a tenant. */
export function postJson(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string | string[]> = {},
): Promise<WireResponse> {
  return send(url, {
    path,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** Parses a response body as JSON. */
export function json(response: WireResponse): Record<string, unknown> {
  return JSON.parse(response.body.toString('utf8')) as Record<string, unknown>;
}
