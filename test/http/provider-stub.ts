import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A payment provider on loopback that dedups charges by Idempotency-Key, as Stripe does. */
export interface ProviderStub {
  url: string;
  /** Calls received, retries included. */
  calls: number;
  /** Charges actually made, by the caller's key. */
  charges: Map<string, string>;
  close(): Promise<void>;
}

export async function startProviderStub(): Promise<ProviderStub> {
  const charges = new Map<string, string>();
  const stub = { url: '', calls: 0, charges, close: async () => undefined } as ProviderStub;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      stub.calls++;
      const key = String(req.headers['idempotency-key'] ?? '');
      let chargeId = charges.get(key);
      if (chargeId === undefined) {
        chargeId = `ch_${charges.size + 1}`;
        if (key) charges.set(key, chargeId);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ chargeId }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  stub.close = () => new Promise((resolve) => server.close(() => resolve()));
  return stub;
}
