import { createServer, type Server } from 'node:net';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { holdConnection } from './connection';

/** One protocol message: type byte, length (itself included), body. */
function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const authenticationOk = message('R', Buffer.from([0, 0, 0, 0]));
const readyForQuery = message('Z', Buffer.from('I', 'latin1'));
// What a backend sends when the server shuts down: FATAL 57P01.
const adminShutdown = message(
  'E',
  Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0', 'latin1'),
);

describe('holdConnection', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('a server that ends the session in the same read that completed the handshake does not crash the process', async () => {
    // A fake server, since the timing is the point: the handshake's last message and the shutdown
    // arrive in one chunk, so pg parses both before pool.connect() resolves.
    const server: Server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        socket.end(Buffer.concat([authenticationOk, readyForQuery, adminShutdown]));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'app', database: 'app', max: 1 });
    pool.on('error', () => undefined);
    cleanup.push(() => pool.end().catch(() => undefined));

    // Without a listener in place before pool.connect() resolves, the 'error' event is thrown from
    // the socket's data handler: an uncaught exception, which ends a real process (and fails this run).
    const held = await holdConnection(pool);
    await expect(held.client.query('SELECT 1')).rejects.toThrow();
    held.release();
  });
});
