// The nemesis's network tool must do what the scenarios rely on, or a scenario could pass without
// its fault ever happening.
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy';

function echoServer(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address ? address.port : 0 });
    });
  });
}

function client(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Collects what `socket` receives until `expected` bytes arrived. */
function receive(socket: Socket, expected: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      if (text.length >= expected) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(text)}`)));
  });
}

const closed = (socket: Socket): Promise<void> =>
  new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });

describe('fault-suite TCP proxy', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function setup(): Promise<{ proxy: TcpProxy; connect: () => Promise<Socket> }> {
    const { server, port } = await echoServer();
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const proxy = await startTcpProxy({ port });
    cleanup.push(() => proxy.close());
    const sockets: Socket[] = [];
    cleanup.push(() => {
      for (const socket of sockets) socket.destroy();
    });
    return {
      proxy,
      connect: async () => {
        const socket = await client(proxy.port);
        socket.on('error', () => undefined);
        sockets.push(socket);
        return socket;
      },
    };
  }

  it('forwards both directions byte for byte', async () => {
    const { proxy, connect } = await setup();
    const socket = await connect();
    const reply = receive(socket, 5);
    socket.write('hello');
    expect(await reply).toBe('hello');
    expect(proxy.connections()).toBe(1);
  });

  it('cutAll closes every open connection; new connections still work', async () => {
    const { proxy, connect } = await setup();
    const first = await connect();
    const second = await connect();
    const reply = receive(second, 2);
    second.write('up');
    await reply;
    proxy.cutAll();
    await Promise.all([closed(first), closed(second)]);
    const third = await connect();
    const again = receive(third, 5);
    third.write('again');
    expect(await again).toBe('again');
  });

  it('stall holds the bytes of open and new connections until heal, then delivers them in order', async () => {
    const { proxy, connect } = await setup();
    const open = await connect();
    proxy.stall();
    let received = '';
    open.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    open.write('one,');
    open.write('two');
    const late = await connect();
    let lateReceived = '';
    late.on('data', (chunk: Buffer) => {
      lateReceived += chunk.toString('utf8');
    });
    late.write('three');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received).toBe('');
    expect(lateReceived).toBe('');
    const delivered = receive(open, 0);
    proxy.heal();
    await delivered;
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (received === 'one,two' && lateReceived === 'three') {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    expect(received).toBe('one,two');
    expect(lateReceived).toBe('three');
  });

  it('during a stall a new connection reaches nothing, not even the server closing it; on heal it does', async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const address = server.address();
    const proxy = await startTcpProxy({ port: typeof address === 'object' && address ? address.port : 0 });
    cleanup.push(() => proxy.close());
    proxy.stall();
    const socket = await client(proxy.port);
    socket.on('error', () => undefined);
    cleanup.push(() => socket.destroy());
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(socket.destroyed).toBe(false);
    proxy.heal();
    await closed(socket);
  });

  it('latency delays every chunk by at least the set time and keeps their order', async () => {
    const { proxy, connect } = await setup();
    const socket = await connect();
    proxy.setLatency(150);
    const startedAt = Date.now();
    const reply = receive(socket, 6);
    socket.write('ab');
    socket.write('cd');
    socket.write('ef');
    expect(await reply).toBe('abcdef');
    // Up and back down: two crossings of the proxy.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(300);
  });

  it('refuse closes new connections at once until heal', async () => {
    const { proxy, connect } = await setup();
    proxy.refuse();
    // The reset may reach the client before or after its connect completes.
    const outcome = await connect().then(
      (socket) => closed(socket).then(() => 'closed'),
      (error: NodeJS.ErrnoException) => error.code,
    );
    expect(['closed', 'ECONNRESET']).toContain(outcome);
    proxy.heal();
    const socket = await connect();
    const reply = receive(socket, 2);
    socket.write('ok');
    expect(await reply).toBe('ok');
  });
});
