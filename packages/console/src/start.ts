import { invalidOptions } from '@onceflow/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { createConsole } from './console';
import type { ConsoleOptions } from './options';

/** Options of {@link startConsole}. */
export interface StartConsoleOptions extends ConsoleOptions {
  /** TCP port; 0 picks a free one. Default: 8080. */
  port?: number;
  /**
   * Interface to bind. Anything but loopback needs `token` or `authenticate`. Default: `127.0.0.1`.
   */
  host?: string;
  /** Fastify's logger setting (where the audit entries go unless `auditLog` is set). Default: false. */
  logger?: boolean | Record<string, unknown>;
}

/** Defaults of {@link StartConsoleOptions} beyond {@link ConsoleOptions}'. */
export const defaultStartConsoleOptions = Object.freeze({ port: 8080, host: '127.0.0.1' });

/** A running console. */
export interface StartedConsole {
  /** Where it listens, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  /** The Fastify instance serving it. */
  readonly server: FastifyInstance;
  /** Closes the server (open pages' live streams included). Safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const loopbackHosts = new Set(['127.0.0.1', '::1', 'localhost']);

/** Starts the console on its own Fastify server: what `onceflow console` runs. */
export async function startConsole(options: StartConsoleOptions): Promise<StartedConsole> {
  const host = options.host ?? defaultStartConsoleOptions.host;
  const port = options.port ?? defaultStartConsoleOptions.port;
  if (!loopbackHosts.has(host) && options.token === undefined && options.authenticate === undefined)
    invalidOptions(
      'onceflow console',
      `binding ${host} exposes the console beyond this machine: give a token (--token) or an authenticate hook, or bind 127.0.0.1`,
    );
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    invalidOptions('onceflow console', 'port must be 0..65535');
  const { port: _port, host: _host, logger, ...consoleOptions } = options;
  const plugin = createConsole(consoleOptions);
  const server = Fastify({ logger: logger ?? false });
  await server.register(plugin);
  await server.listen({ host, port });
  const address = server.server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  const shown = host.includes(':') ? `[${host}]` : host;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= server.close();
    return stopping;
  };
  return { url: `http://${shown}:${bound}/`, server, stop, [Symbol.asyncDispose]: stop };
}
