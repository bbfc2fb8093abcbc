import { OnceflowError } from '@onceflow/core';
import { createOnceflowAdmin, type DeadLetterDetail, type MessageTrace } from '@onceflow/postgres';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { consoleCss, consoleJs } from './assets';
import { html } from './html';
import { type ConsoleOptions, type ResolvedConsoleOptions, resolveConsoleOptions } from './options';
import {
  type ConsumerVerdict,
  confirmation,
  deadLetterDetail,
  deadLetterHref,
  deadLetterList,
  type Frame,
  keysPage,
  loginPage,
  notice,
  overviewFragment,
  type PositionWithLag,
  page,
  parkedList,
  type Sample,
  wherePage,
} from './pages';
import { ConsoleSecurity, isLoopback, sameOrigin, securityHeaders } from './security';

interface Principal {
  who: string;
  /** What the CSRF token is bound to. */
  key: string;
}

const maxSamples = 150;

/**
 * The onceflow console as a Fastify plugin: register it in your app, under a prefix of your choice
 * (`app.register(createConsole({ pool }), { prefix: '/onceflow' })`). Server-rendered pages, a small
 * script for live refresh, no build step. Every write goes through the admin functions, after a
 * confirmation step, with a session opened with the access token (or your `authenticate` hook), a
 * CSRF token and a same-origin check, and lands in the audit log.
 */
export function createConsole(options: ConsoleOptions): FastifyPluginAsync {
  const resolved = resolveConsoleOptions(options, (pool, schema) => createOnceflowAdmin({ pool, schema }));
  return async (app) => {
    registerConsole(app, resolved);
  };
}

function registerConsole(app: FastifyInstance, options: ResolvedConsoleOptions): void {
  const { admin } = options;
  const security = new ConsoleSecurity(options.token);
  const base = app.prefix.replace(/\/$/, '');
  const cookiePath = base === '' ? '/' : base;
  const samples: Sample[] = [];
  let lastCounters: { at: number; published: number; consumed: number } | null = null;
  const streams = new Set<() => void>();

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 1024 * 1024 },
    (_request, body, done) => done(null, new URLSearchParams(String(body))),
  );
  app.addHook('onClose', async () => {
    for (const end of streams) end();
  });

  const principalOf = async (request: FastifyRequest): Promise<Principal | null> => {
    if (options.authenticate) {
      const who = await options.authenticate(request);
      if (typeof who === 'string' && who !== '') return { who, key: `user:${who}` };
    }
    const session = security.sessionOf(request);
    return session === null ? null : { who: 'token', key: `session:${session}` };
  };

  const frameOf = (principal: Principal | null, current: Frame['current'], title: string): Frame => ({
    base,
    title,
    current,
    who: principal?.who ?? null,
    csrf: principal === null ? null : security.csrfToken(principal.key),
    readOnly: options.readOnly,
    tokenConfigured: options.token !== undefined,
  });

  const send = (
    reply: FastifyReply,
    status: number,
    frame: Frame,
    body: ReturnType<typeof html>,
  ): FastifyReply =>
    reply
      .code(status)
      .headers(securityHeaders)
      .type('text/html; charset=utf-8')
      .send(page(frame, html`<h1>${frame.title}</h1>${body}`));

  // Pages for a client off the loopback interface need a signed-in principal, whatever the bind.
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.slice(base.length).split('?')[0] ?? '';
    if (path.startsWith('/assets/') || path === '/login') return;
    if (isLoopback(request)) return;
    if ((await principalOf(request)) !== null) return;
    if (options.token === undefined && options.authenticate === undefined)
      return send(
        reply,
        403,
        frameOf(null, 'login', 'Not available'),
        notice(
          'error',
          'This console serves only the loopback interface unless it has an access token or an auth hook.',
        ),
      );
    if (request.method === 'GET' && options.token !== undefined)
      return reply.redirect(`${base}/login?next=${encodeURIComponent(request.url)}`);
    return send(reply, 401, frameOf(null, 'login', 'Sign in'), notice('error', 'Sign in first.'));
  });

  const formOf = (request: FastifyRequest): URLSearchParams =>
    request.body instanceof URLSearchParams ? request.body : new URLSearchParams();

  /** The checks of every write; resolves to the principal, or sends the refusal and resolves to null. */
  const authorizeWrite = async (request: FastifyRequest, reply: FastifyReply): Promise<Principal | null> => {
    const principal = await principalOf(request);
    const frame = frameOf(principal, 'overview', 'Refused');
    if (options.readOnly) {
      await send(reply, 403, frame, notice('error', 'The console runs read-only: no action is taken.'));
      return null;
    }
    if (principal === null) {
      await send(
        reply,
        401,
        frame,
        notice(
          'error',
          html`Actions need a session: <a href="${base}/login">sign in with the access token</a>.`,
        ),
      );
      return null;
    }
    if (!sameOrigin(request) || !security.csrfMatches(principal.key, formOf(request).get('_csrf'))) {
      await send(
        reply,
        403,
        frame,
        notice(
          'error',
          'The form did not come from this console (CSRF check failed); reload the page and try again.',
        ),
      );
      return null;
    }
    return principal;
  };

  const audit = async (
    request: FastifyRequest,
    principal: Principal,
    action: string,
    ids: readonly string[],
    run: () => Promise<number>,
  ): Promise<number> => {
    const entry = {
      at: new Date().toISOString(),
      who: principal.who,
      from: { ip: request.ip, userAgent: request.headers['user-agent'] ?? null },
      action,
      ids,
    };
    try {
      const done = await run();
      await writeAudit(request, { ...entry, done });
      return done;
    } catch (error) {
      await writeAudit(request, {
        ...entry,
        done: null,
        error: error instanceof Error ? error.message : String(error),
      });
      throw error;
    }
  };
  const writeAudit = async (
    request: FastifyRequest,
    entry: Parameters<NonNullable<ConsoleOptions['auditLog']>>[0],
  ) => {
    if (options.auditLog) await options.auditLog(entry);
    else request.log.info({ audit: entry }, `onceflow console: ${entry.action}`);
  };

  app.get('/assets/console.css', (_request, reply) =>
    reply
      .headers({ 'cache-control': 'public, max-age=3600', 'x-content-type-options': 'nosniff' })
      .type('text/css; charset=utf-8')
      .send(consoleCss),
  );
  app.get('/assets/console.js', (_request, reply) =>
    reply
      .headers({ 'cache-control': 'public, max-age=3600', 'x-content-type-options': 'nosniff' })
      .type('text/javascript; charset=utf-8')
      .send(consoleJs),
  );

  // A failing admin call shows as a page that says what failed (OF_SCHEMA_MISMATCH says to migrate).
  app.setErrorHandler(async (error, request, reply) => {
    const code = (error as { code?: unknown }).code;
    const status =
      code === 'OF_INVALID_ARGUMENT' ? 400 : ((error as { statusCode?: number }).statusCode ?? 500);
    if (status >= 500) request.log.error({ err: error }, 'onceflow console: request failed');
    const frame = frameOf(await principalOf(request).catch(() => null), 'overview', 'Something failed');
    return send(
      reply,
      status,
      frame,
      notice(
        'error',
        html`${typeof code === 'string' ? html`<code>${code}</code> ` : ''}${error instanceof Error ? error.message : String(error)}`,
      ),
    );
  });

  app.get('/favicon.ico', (_request, reply) => reply.code(204).send());

  // ---- overview
  const renderOverview = async (): Promise<ReturnType<typeof html>> => {
    const [outbox, inbox, counters] = await Promise.all([
      admin.outboxStatus(),
      admin.inboxStatus(),
      admin.flowCounters(),
    ]);
    const positions = inbox.consumers.flatMap((consumer) => consumer.positions);
    let kafkaError: string | null = null;
    const highs = new Map<string, string>();
    if (options.kafka) {
      const topics = [...new Set(positions.map((p) => p.topic))];
      await Promise.all(
        topics.map(async (topic) => {
          try {
            for (const offset of await options.kafka!.fetchTopicOffsets(topic))
              highs.set(`${topic}\u0000${offset.partition}`, offset.high);
          } catch (error) {
            kafkaError = `${topic}: ${error instanceof Error ? error.message : String(error)}`;
          }
        }),
      );
    }
    const withLag: PositionWithLag[] = positions.map((p) => {
      const high = highs.get(`${p.topic}\u0000${p.partition}`) ?? null;
      return { ...p, high, lag: high === null ? null : Math.max(0, Number(high) - Number(p.nextOffset)) };
    });
    const now = Date.now();
    const last = samples.at(-1);
    if (last === undefined || now - last.at >= options.refreshIntervalMs / 2) {
      const seconds = lastCounters === null ? 0 : (now - lastCounters.at) / 1000;
      const rate = (value: number, before: number | undefined): number =>
        seconds > 0 && before !== undefined ? Math.max(0, (value - before) / seconds) : 0;
      samples.push({
        at: now,
        backlog: outbox.backlog,
        publishedPerSecond: rate(counters.published, lastCounters?.published),
        consumedPerSecond: rate(counters.consumed, lastCounters?.consumed),
        lag: withLag.some((p) => p.lag !== null) ? withLag.reduce((sum, p) => sum + (p.lag ?? 0), 0) : null,
      });
      if (samples.length > maxSamples) samples.shift();
      lastCounters = { at: now, ...counters };
    }
    return overviewFragment({
      base,
      outbox,
      inbox,
      positions: withLag,
      kafkaError,
      kafkaConfigured: options.kafka !== undefined,
      samples,
      at: new Date(now),
    });
  };

  app.get('/', async (request, reply) => {
    const frame = {
      ...frameOf(await principalOf(request), 'overview', 'Overview'),
      refreshSeconds: Math.ceil(options.refreshIntervalMs / 1000),
    };
    return send(
      reply,
      200,
      frame,
      html`<div id="live" data-events="${base}/events">${await renderOverview()}</div><p class="muted"><a href="${base}/">Refresh</a> · live every ${options.refreshIntervalMs / 1000} s</p>`,
    );
  });

  app.get('/events', (request, reply) => {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-content-type-options': 'nosniff',
    });
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      streams.delete(end);
      raw.end();
    };
    streams.add(end);
    request.raw.on('close', end);
    const tick = async (): Promise<void> => {
      try {
        const fragment = (await renderOverview()).text;
        if (!ended)
          raw.write(
            `event: overview\n${fragment
              .split('\n')
              .map((line) => `data: ${line}`)
              .join('\n')}\n\n`,
          );
      } catch (error) {
        request.log.warn({ err: error }, 'onceflow console: overview refresh failed');
        if (!ended) raw.write(`: refresh failed\n\n`);
      }
      if (!ended) timer = setTimeout(() => void tick(), options.refreshIntervalMs);
    };
    timer = setTimeout(() => void tick(), options.refreshIntervalMs);
  });

  // ---- dead letters (through the admin library's verbs; none are implemented here)
  app.get('/dead-letters', async (request, reply) => {
    const frame = frameOf(await principalOf(request), 'dead-letters', 'Dead letters');
    const query = request.query as Record<string, string | undefined>;
    const filter = { consumer: query.consumer ?? '', topic: query.topic ?? '', state: query.state ?? '' };
    if (filter.state !== '' && !deadLetterStates.has(filter.state))
      return send(reply, 400, frame, notice('error', 'state is one of dead, redrive_requested, redriven'));
    const letters = await admin.listDeadLetters({
      ...(filter.consumer ? { consumer: filter.consumer } : {}),
      ...(filter.topic ? { topic: filter.topic } : {}),
      ...(filter.state ? { state: filter.state as 'dead' } : {}),
      limit: options.pageSize,
    });
    return send(reply, 200, frame, deadLetterList(frame, letters, filter));
  });

  app.get('/dead-letters/show', async (request, reply) => {
    const frame = frameOf(await principalOf(request), 'dead-letters', 'Dead letter');
    const query = request.query as { consumer?: string; messageId?: string };
    const letter =
      query.consumer && query.messageId
        ? await admin.getDeadLetter({ consumer: query.consumer, messageId: query.messageId })
        : undefined;
    if (letter === undefined) return send(reply, 404, frame, notice('error', 'No such dead letter.'));
    return send(reply, 200, frame, deadLetterDetail(frame, letter, options.payloadPreviewBytes));
  });

  const writeRoute = (
    path: string,
    current: Frame['current'],
    spec: {
      title: string;
      verb: string;
      danger?: boolean;
      back: string;
      what: (n: number) => string;
      done: (n: number) => string;
      run: (ids: string[], dryRun: boolean) => Promise<number>;
    },
  ): void => {
    app.post(path, async (request, reply) => {
      const principal = await authorizeWrite(request, reply);
      if (principal === null) return reply;
      const form = formOf(request);
      const ids = [...new Set(form.getAll('id').filter((id) => id !== ''))];
      const frame = frameOf(principal, current, spec.title);
      if (ids.length === 0)
        return send(
          reply,
          400,
          frame,
          notice('error', html`Select at least one. <a href="${base}/${spec.back}">Back</a>`),
        );
      if (form.get('confirm') !== 'yes') {
        // The admin function's dry run says what the action would select, before anything changes.
        const selected = await spec.run(ids, true);
        return send(
          reply,
          200,
          frame,
          confirmation(frame, {
            path: path.slice(1),
            verb: spec.verb,
            danger: spec.danger ?? false,
            what: spec.what(selected),
            ids,
            back: `${base}/${spec.back}`,
          }),
        );
      }
      const done = await audit(request, principal, spec.verb.toLowerCase().split(' ')[0]!, ids, () =>
        spec.run(ids, false),
      );
      return send(
        reply,
        200,
        frame,
        html`${notice('ok', spec.done(done))}<p><a href="${base}/${spec.back}">Back</a></p>`,
      );
    });
  };

  writeRoute('/dead-letters/redrive', 'dead-letters', {
    title: 'Redrive dead letters',
    verb: 'Redrive',
    back: 'dead-letters',
    what: (n) =>
      `Redrive ${n} dead letter${n === 1 ? '' : 's'}? Each is processed again, exactly once, by its consumer.`,
    done: (n) => `${n} dead letter${n === 1 ? '' : 's'} redriven.`,
    run: async (ids, dryRun) => {
      // One call per consumer: the admin's redrive takes one consumer's message ids.
      const byConsumer = new Map<string, string[]>();
      for (const ref of ids) {
        const [consumer, messageId] = parseRef(ref);
        byConsumer.set(consumer, [...(byConsumer.get(consumer) ?? []), messageId]);
      }
      let count = 0;
      for (const [consumer, messageIds] of byConsumer)
        count += (await admin.redriveDeadLetters({ consumer, messageIds, limit: messageIds.length, dryRun }))
          .redriven.length;
      return count;
    },
  });

  // ---- parked events
  app.get('/parked', async (request, reply) => {
    const frame = frameOf(await principalOf(request), 'parked', 'Parked events');
    const events = await admin.listParkedEvents({ limit: options.pageSize });
    return send(reply, 200, frame, parkedList(frame, events));
  });
  writeRoute('/parked/unpark', 'parked', {
    title: 'Unpark events',
    verb: 'Unpark',
    back: 'parked',
    what: (n) =>
      `Unpark ${n} event${n === 1 ? '' : 's'}? The relay publishes them (and the events of their keys waiting behind them) at once.`,
    done: (n) => `${n} event${n === 1 ? '' : 's'} unparked.`,
    // Unpark has no dry run: the confirmation counts the selected events that are still parked.
    run: async (ids, dryRun) =>
      dryRun
        ? (await admin.listParkedEvents({ eventIds: ids, limit: 100_000 })).length
        : admin.unparkEvents({ eventIds: ids }),
  });
  writeRoute('/parked/drop', 'parked', {
    title: 'Drop events',
    verb: 'Drop for good',
    danger: true,
    back: 'parked',
    what: (n) =>
      `Drop ${n} parked event${n === 1 ? '' : 's'} for good? They are never published; later events of their keys go on.`,
    done: (n) => `${n} event${n === 1 ? '' : 's'} dropped.`,
    run: async (ids, dryRun) => (await admin.dropParkedEvents({ eventIds: ids, dryRun })).length,
  });

  // ---- where is message X?
  app.get('/where', async (request, reply) => {
    const frame = frameOf(await principalOf(request), 'where', 'Where is message X?');
    const id = ((request.query as { id?: string }).id ?? '').trim();
    if (id === '')
      return send(reply, 200, frame, wherePage(frame, '', null, [], options.payloadPreviewBytes));
    const trace = await admin.traceMessage(id);
    // A dead letter is keyed by consumer and message id: one lookup per consumer of the message's topics.
    const consumers = new Set([
      ...trace.positions.map((p) => p.consumer),
      ...trace.consumed.map((c) => c.consumer),
    ]);
    const letters = (
      await Promise.all([...consumers].map((consumer) => admin.getDeadLetter({ consumer, messageId: id })))
    ).filter((letter): letter is DeadLetterDetail => letter !== undefined);
    return send(
      reply,
      200,
      frame,
      wherePage(frame, id, trace, verdictsOf(trace, letters, base), options.payloadPreviewBytes),
    );
  });

  // ---- idempotency keys
  app.get('/keys', async (request, reply) => {
    const frame = frameOf(await principalOf(request), 'keys', 'Idempotency keys');
    const query = request.query as { scope?: string; key?: string };
    const scope = (query.scope ?? '').trim();
    const key = (query.key ?? '').trim();
    if (scope === '')
      return send(reply, 200, frame, keysPage(frame, { scope, key }, null, options.payloadPreviewBytes));
    const keys =
      key === ''
        ? await admin.listIdempotencyKeys({ scope, limit: options.pageSize })
        : [await admin.getIdempotencyKey({ scope, key })].filter((k) => k !== undefined);
    return send(reply, 200, frame, keysPage(frame, { scope, key }, keys, options.payloadPreviewBytes));
  });

  // ---- sessions
  app.get('/login', async (request, reply) => {
    const frame = frameOf(await principalOf(request), 'login', 'Sign in');
    if (options.token === undefined)
      return send(
        reply,
        200,
        frame,
        notice(
          'info',
          'This console has no access token: start it with one (--token, or the token option) to take actions.',
        ),
      );
    const next = (request.query as { next?: string }).next ?? `${base}/`;
    return send(reply, 200, frame, loginPage(frame, false, next));
  });
  app.post('/login', async (request, reply) => {
    const form = formOf(request);
    const nextParam = form.get('next') ?? '';
    // Only a path of this console: never an open redirect.
    const next = nextParam.startsWith(`${base}/`) && !nextParam.startsWith('//') ? nextParam : `${base}/`;
    if (!sameOrigin(request) || !security.tokenMatches(form.get('token'))) {
      const frame = frameOf(null, 'login', 'Sign in');
      return send(reply, 401, frame, loginPage(frame, true, next));
    }
    security.openSession(reply, cookiePath);
    return reply.headers(securityHeaders).redirect(next, 303);
  });
  app.post('/logout', async (request, reply) => {
    const principal = await principalOf(request);
    if (principal !== null && security.csrfMatches(principal.key, formOf(request).get('_csrf')))
      security.closeSession(reply, cookiePath);
    return reply.redirect(`${base}/`, 303);
  });
}

const deadLetterStates = new Set(['dead', 'redrive_requested', 'redriven']);

/** The consumer and message id of a dead-letter form value (see deadLetterRef). */
function parseRef(ref: string): [string, string] {
  try {
    const parsed: unknown = JSON.parse(ref);
    if (
      Array.isArray(parsed) &&
      parsed.length === 2 &&
      parsed.every((part) => typeof part === 'string' && part !== '')
    )
      return [parsed[0] as string, parsed[1] as string];
  } catch {
    // fall through
  }
  throw new OnceflowError(
    'OF_INVALID_ARGUMENT',
    'onceflow console: a dead letter is named by [consumer, messageId]',
  );
}

/** Each consumer of the message's topic, and where the message stands for it. */
function verdictsOf(
  trace: MessageTrace,
  letters: readonly DeadLetterDetail[],
  base: string,
): ConsumerVerdict[] {
  const topics = new Set([
    ...trace.waiting.map((w) => w.topic),
    ...trace.published.map((p) => p.topic),
    ...trace.consumed.map((c) => c.topic),
  ]);
  const placed = trace.consumed[0];
  const consumers = new Set([
    ...trace.positions.filter((p) => topics.has(p.topic)).map((p) => p.consumer),
    ...trace.consumed.map((c) => c.consumer),
    ...letters.map((l) => l.consumer),
  ]);
  return [...consumers].sort().map((consumer): ConsumerVerdict => {
    const letter = letters.find((l) => l.consumer === consumer);
    if (letter && letter.state !== 'redriven')
      return {
        consumer,
        state: 'dead-lettered',
        detail: html`${letter.reason} (${letter.errorCode}): ${letter.errorMessage.slice(0, 300)} · ${letter.deadLetteredAt.toISOString()} · ${letter.state} · <a href="${deadLetterHref(base, letter)}">inspect / redrive</a>`,
      };
    const consumed = trace.consumed.find((c) => c.consumer === consumer);
    if (consumed)
      return {
        consumer,
        state: 'processed',
        detail: html`${letter ? html`redriven at ${letter.redrivenAt?.toISOString() ?? '–'} after it was dead-lettered (${letter.reason}) · ` : ''}at ${consumed.processedAt.toISOString()} · ${consumed.topic} partition ${consumed.partition}, offset ${consumed.offset} · inbox generation ${consumed.generation}`,
      };
    const positions = trace.positions.filter((p) => p.consumer === consumer && topics.has(p.topic));
    if (placed !== undefined) {
      const position = positions.find((p) => p.topic === placed.topic && p.partition === placed.partition);
      if (position === undefined || BigInt(position.nextOffset) <= BigInt(placed.offset)) {
        const ahead = BigInt(placed.offset) - BigInt(position?.nextOffset ?? '0');
        return {
          consumer,
          state: 'pending',
          detail: html`${ahead.toString()} message${ahead === 1n ? '' : 's'} ahead of it in partition ${placed.partition} (at offset ${position?.nextOffset ?? '0'})`,
        };
      }
      return {
        consumer,
        state: 'passed',
        detail: html`its position (${position.nextOffset}) is past offset ${placed.offset} but it holds no record: past the retention window, or positions were reset`,
      };
    }
    return {
      consumer,
      state: trace.waiting.length > 0 ? 'not-reached' : 'pending',
      detail: html`not recorded yet · positions: ${positions.map((p) => `${p.topic}[${p.partition}]@${p.nextOffset}`).join(', ') || 'none'}`,
    };
  });
}
