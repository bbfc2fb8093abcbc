// A loopback TCP proxy the fault suite puts between onceflow's processes and a server, so it can break
// the network without touching the server: cut every connection, stall traffic (a partition: bytes
// are held, as TCP would keep retransmitting them, and flow again on heal unless the peers gave up;
// neither side hears of the other closing meanwhile, and a new connection is accepted but reaches
// nothing, like a server that accepts and never answers), refuse new connections, and delay every
// chunk by a fixed latency.
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/** A running proxy. */
export interface TcpProxy {
  /** Port the proxy listens on (127.0.0.1). */
  readonly port: number;
  /** Connections open through the proxy right now. */
  connections(): number;
  /** Connections accepted since the proxy started. */
  accepted(): number;
  /** Destroys every open connection at once (both sides see a reset); new ones are accepted. */
  cutAll(): void;
  /**
   * Stalls all traffic: open connections stop forwarding and new connections are accepted but not
   * forwarded, like a network partition. {@link TcpProxy.heal} lets the held bytes flow again.
   */
  stall(): void;
  /** Accepted connections are closed at once, like a server that is not listening. */
  refuse(): void;
  /** Adds `ms` milliseconds to every chunk in both directions (0 for none). Order is kept. */
  setLatency(ms: number): void;
  /** Ends stall and refusal and removes the latency; connections that survived carry on. */
  heal(): void;
  /** Closes the listener and every connection. Idempotent. */
  close(): Promise<void>;
}

interface Pipe {
  client: Socket;
  /** Not connected yet when the connection arrived during a stall. */
  upstream: Socket | undefined;
  /** One side went away during a stall: the other hears of it on heal. */
  closedDuringStall: boolean;
  /** Chunks waiting to be written, per direction, in arrival order. */
  queues: { up: Array<{ at: number; data: Buffer }>; down: Array<{ at: number; data: Buffer }> };
  timers: Set<NodeJS.Timeout>;
}

/** Starts a proxy on a free loopback port (or `listenPort`) forwarding to `target`. */
export async function startTcpProxy(
  target: { host?: string; port: number },
  options: { listenPort?: number } = {},
): Promise<TcpProxy> {
  const host = target.host ?? '127.0.0.1';
  const pipes = new Set<Pipe>();
  let latencyMs = 0;
  let stalled = false;
  let refusing = false;
  let accepted = 0;
  let closed: Promise<void> | undefined;

  const destroy = (pipe: Pipe): void => {
    for (const timer of pipe.timers) clearTimeout(timer);
    pipe.timers.clear();
    pipe.client.destroy();
    pipe.upstream?.destroy();
    pipes.delete(pipe);
  };

  const sideClosed = (pipe: Pipe): void => {
    if (stalled) pipe.closedDuringStall = true;
    else destroy(pipe);
  };

  const connectUpstream = (pipe: Pipe): void => {
    const upstream = tcpConnect({ host, port: target.port });
    upstream.setNoDelay(true);
    pipe.upstream = upstream;
    upstream.on('data', (data) => forward(pipe, 'down', data));
    upstream.on('error', () => sideClosed(pipe));
    upstream.on('close', () => sideClosed(pipe));
    upstream.on('connect', () => flush(pipe, 'up'));
  };

  // Writes what is due in one direction, keeping order: a chunk never overtakes an earlier one.
  const flush = (pipe: Pipe, direction: 'up' | 'down'): void => {
    if (stalled) return;
    const queue = pipe.queues[direction];
    const target = direction === 'up' ? pipe.upstream : pipe.client;
    if (target === undefined || target.connecting) return;
    const now = Date.now();
    while (queue.length > 0 && queue[0]!.at <= now) {
      const chunk = queue.shift()!;
      if (!target.destroyed) target.write(chunk.data);
    }
    if (queue.length > 0) {
      const timer = setTimeout(
        () => {
          pipe.timers.delete(timer);
          flush(pipe, direction);
        },
        Math.max(1, queue[0]!.at - now),
      );
      pipe.timers.add(timer);
    }
  };

  const forward = (pipe: Pipe, direction: 'up' | 'down', data: Buffer): void => {
    const queue = pipe.queues[direction];
    const last = queue.at(-1)?.at ?? 0;
    queue.push({ at: Math.max(Date.now() + latencyMs, last), data });
    if (queue.length === 1) flush(pipe, direction);
  };

  const server: Server = createServer((client) => {
    accepted++;
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    client.setNoDelay(true);
    const pipe: Pipe = {
      client,
      upstream: undefined,
      closedDuringStall: false,
      queues: { up: [], down: [] },
      timers: new Set(),
    };
    pipes.add(pipe);
    client.on('data', (data) => forward(pipe, 'up', data));
    // Either side failing or ending takes the whole connection down, as a real peer would see it.
    client.on('error', () => sideClosed(pipe));
    client.on('close', () => sideClosed(pipe));
    if (!stalled) connectUpstream(pipe);
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: no port');

  return {
    port: address.port,
    connections: () => pipes.size,
    accepted: () => accepted,
    cutAll() {
      for (const pipe of [...pipes]) {
        pipe.client.resetAndDestroy();
        pipe.upstream?.resetAndDestroy();
        destroy(pipe);
      }
    },
    stall() {
      stalled = true;
      for (const pipe of pipes) {
        pipe.client.pause();
        pipe.upstream?.pause();
      }
    },
    refuse() {
      refusing = true;
    },
    setLatency(ms) {
      latencyMs = Math.max(0, ms);
    },
    heal() {
      const wasStalled = stalled;
      stalled = false;
      refusing = false;
      latencyMs = 0;
      if (!wasStalled) return;
      for (const pipe of [...pipes]) {
        if (pipe.closedDuringStall) {
          destroy(pipe);
          continue;
        }
        pipe.client.resume();
        if (pipe.upstream === undefined) connectUpstream(pipe);
        else pipe.upstream.resume();
        flush(pipe, 'up');
        flush(pipe, 'down');
      }
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const pipe of [...pipes]) destroy(pipe);
        server.close(() => resolve());
      });
      return closed;
    },
  };
}
