import type {
  DeadLetter,
  DeadLetterDetail,
  IdempotencyKeyDetail,
  IdempotencyKeyInfo,
  InboxPosition,
  InboxStatus,
  MessageTrace,
  OutboxStatusDetail,
} from '@onceflow/postgres';
import { formatMs, formatTime, type Html, html, previewPayload, sparkline } from './html';

/** What every page's frame needs. */
export interface Frame {
  base: string;
  title: string;
  current: 'overview' | 'dead-letters' | 'parked' | 'where' | 'keys' | 'login';
  who: string | null;
  /** The CSRF token of the signed-in principal; null when nobody is signed in. */
  csrf: string | null;
  readOnly: boolean;
  tokenConfigured: boolean;
  refreshSeconds?: number;
}

const navItems = [
  ['overview', '', 'Overview'],
  ['dead-letters', 'dead-letters', 'Dead letters'],
  ['parked', 'parked', 'Parked events'],
  ['where', 'where', 'Where is message X?'],
  ['keys', 'keys', 'Idempotency keys'],
] as const;

/** A full page around `body`. */
export function page(frame: Frame, body: Html): string {
  const { base } = frame;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${frame.title} · onceflow console</title>
<link rel="stylesheet" href="${base}/assets/console.css">
${frame.refreshSeconds ? html`<noscript><meta http-equiv="refresh" content="${frame.refreshSeconds}"></noscript>` : ''}
<script src="${base}/assets/console.js" defer></script></head>
<body><header><span class="brand">onceflow console</span><nav>${navItems.map(
    ([id, path, label]) =>
      html`<a href="${base}/${path}"${frame.current === id ? html` aria-current="page"` : ''}>${label}</a>`,
  )}</nav>
<span class="who">${frame.readOnly ? html`<span class="badge warn">read-only</span>` : ''}${
    frame.who !== null
      ? html`signed in as <strong>${frame.who}</strong>${
          frame.csrf !== null
            ? html`<form class="inline" method="post" action="${base}/logout"><input type="hidden" name="_csrf" value="${frame.csrf}"><button class="secondary" type="submit">Sign out</button></form>`
            : ''
        }`
      : frame.tokenConfigured
        ? html`<a href="${base}/login">Sign in</a> to act`
        : html`<span class="muted">actions need a token</span>`
  }</span></header>
<main>${body}</main></body></html>`.text;
}

/** A form's hidden CSRF field. */
export const csrfField = (csrf: string | null): Html =>
  html`<input type="hidden" name="_csrf" value="${csrf ?? ''}">`;

/** Whether write buttons are enabled, and why not. */
export function writeState(frame: Frame): { enabled: boolean; reason: string } {
  if (frame.readOnly) return { enabled: false, reason: 'the console runs read-only' };
  if (frame.who === null)
    return {
      enabled: false,
      reason: frame.tokenConfigured
        ? 'sign in with the access token to act'
        : 'start the console with a token to act',
    };
  return { enabled: true, reason: '' };
}

export const notice = (kind: 'ok' | 'error' | 'info', body: Html | string): Html =>
  html`<div class="notice ${kind === 'info' ? '' : kind}" role="${kind === 'error' ? 'alert' : 'status'}">${body}</div>`;

/** One overview sample, for the charts. */
export interface Sample {
  at: number;
  backlog: number;
  publishedPerSecond: number;
  consumedPerSecond: number;
  lag: number | null;
}

/** A consumer's partition with its lag against the high watermark. */
export interface PositionWithLag extends InboxPosition {
  high: string | null;
  lag: number | null;
}

/** The live part of the overview (re-rendered on every refresh). */
export function overviewFragment(data: {
  base: string;
  outbox: OutboxStatusDetail;
  inbox: InboxStatus;
  positions: PositionWithLag[];
  kafkaError: string | null;
  kafkaConfigured: boolean;
  samples: readonly Sample[];
  at: Date;
}): Html {
  const { outbox, inbox } = data;
  const deadLetters = inbox.consumers.reduce((sum, c) => sum + c.deadLetters.dead, 0);
  const totalLag = data.positions.some((p) => p.lag !== null)
    ? data.positions.reduce((sum, p) => sum + (p.lag ?? 0), 0)
    : null;
  const relays = new Map<string, { lanes: number[]; epochs: string[]; leaseExpiresAt: Date | null }>();
  for (const lane of outbox.lanes) {
    if (lane.owner === null) continue;
    const relay = relays.get(lane.owner) ?? { lanes: [], epochs: [], leaseExpiresAt: null };
    relay.lanes.push(lane.lane);
    relay.epochs.push(lane.epoch);
    if (lane.leaseExpiresAt && (relay.leaseExpiresAt === null || lane.leaseExpiresAt < relay.leaseExpiresAt))
      relay.leaseExpiresAt = lane.leaseExpiresAt;
    relays.set(lane.owner, relay);
  }
  const card = (label: string, value: string | number, cls = ''): Html =>
    html`<div class="card"><div class="value ${cls}" data-card="${label}">${value}</div><div class="label">${label}</div></div>`;
  return html`<section class="cards">
${card('outbox backlog', outbox.backlog, outbox.backlog > 0 ? 'warn' : '')}
${card('oldest waiting', formatMs(outbox.oldestAgeMs))}
${card('parked events', outbox.parked, outbox.parked > 0 ? 'bad' : '')}
${card('dead letters', deadLetters, deadLetters > 0 ? 'bad' : '')}
${card('live relays', outbox.liveRelays)}
${card('owned lanes', `${outbox.ownedLanes} / ${outbox.lanes.length}`)}
${card('consumer lag', totalLag ?? '–', (totalLag ?? 0) > 0 ? 'warn' : '')}
</section>
<div class="charts">
${sparkline(
  data.samples.map((s) => s.backlog),
  'backlog',
)}
${sparkline(
  data.samples.map((s) => s.publishedPerSecond),
  'published / s',
)}
${sparkline(
  data.samples.map((s) => s.consumedPerSecond),
  'consumed / s',
)}
${
  data.kafkaConfigured
    ? sparkline(
        data.samples.map((s) => s.lag ?? 0),
        'total lag',
      )
    : ''
}
</div>
<h2>Outbox by topic</h2>
${
  outbox.topics.length === 0
    ? html`<p class="muted">The outbox is empty.</p>`
    : html`<table id="topics"><thead><tr><th>topic</th><th class="num">backlog</th><th class="num">parked</th><th class="num">oldest waiting</th></tr></thead><tbody>${outbox.topics.map(
        (topic) =>
          html`<tr><td>${topic.topic}</td><td class="num" data-backlog>${topic.backlog}</td><td class="num">${topic.parked}</td><td class="num">${formatMs(topic.oldestAgeMs)}</td></tr>`,
      )}</tbody></table>`
}
<h2>Relays and lanes</h2>
${
  relays.size === 0
    ? html`<p class="muted">No relay holds a lane.</p>`
    : html`<table id="relays"><thead><tr><th>relay</th><th>lanes</th><th>epochs</th><th>lease ends</th></tr></thead><tbody>${[
        ...relays,
      ].map(
        ([owner, relay]) =>
          html`<tr><td>${owner}</td><td>${relay.lanes.join(', ')}</td><td>${relay.epochs.join(', ')}</td><td>${formatTime(relay.leaseExpiresAt)}</td></tr>`,
      )}</tbody></table>`
}
<details><summary>Lanes (owner, epoch, backlog)</summary><table><thead><tr><th class="num">lane</th><th>owner</th><th class="num">epoch</th><th class="num">backlog</th><th class="num">oldest waiting</th></tr></thead><tbody>${outbox.lanes.map(
    (lane) =>
      html`<tr><td class="num">${lane.lane}</td><td>${lane.owner ?? html`<span class="muted">free</span>`}</td><td class="num">${lane.epoch}</td><td class="num">${lane.backlog}</td><td class="num">${formatMs(lane.oldestAgeMs)}</td></tr>`,
  )}</tbody></table></details>
<h2>Consumers</h2>
${data.kafkaError !== null ? notice('error', html`Kafka: ${data.kafkaError}`) : ''}
${!data.kafkaConfigured ? html`<p class="muted">Lag needs a Kafka admin (the <code>kafka</code> option, or <code>onceflow console</code> with Kafka settings).</p>` : ''}
${
  inbox.consumers.length === 0
    ? html`<p class="muted">No consumer has started on this schema yet.</p>`
    : html`<table id="consumer-summary"><thead><tr><th>consumer</th><th class="num">retention</th><th class="num">dead letters</th><th class="num">redrives pending</th><th class="num">redriven</th></tr></thead><tbody>${inbox.consumers.map(
        (c) =>
          html`<tr><td>${c.consumer}</td><td class="num">${c.retentionSeconds === null ? '–' : formatMs(c.retentionSeconds * 1000)}</td><td class="num ${c.deadLetters.dead > 0 ? 'bad' : ''}">${c.deadLetters.dead > 0 ? html`<a href="${data.base}/dead-letters?consumer=${encodeURIComponent(c.consumer)}">${c.deadLetters.dead}</a>` : 0}</td><td class="num">${c.deadLetters.redriveRequested}</td><td class="num">${c.deadLetters.redriven}</td></tr>`,
      )}</tbody></table>`
}
${
  data.positions.length === 0
    ? ''
    : html`<table id="consumers"><thead><tr><th>consumer</th><th>topic</th><th class="num">partition</th><th class="num">next offset</th><th class="num">high watermark</th><th class="num">lag</th><th>updated</th></tr></thead><tbody>${data.positions.map(
        (p) =>
          html`<tr><td>${p.consumer}</td><td>${p.topic}</td><td class="num">${p.partition}</td><td class="num">${p.nextOffset}</td><td class="num">${p.high ?? '–'}</td><td class="num ${(p.lag ?? 0) > 0 ? 'warn' : ''}">${p.lag ?? '–'}</td><td>${formatTime(p.updatedAt)}</td></tr>`,
      )}</tbody></table>`
}
${data.kafkaConfigured && data.positions.length > 0 ? html`<p class="muted">Lag is the high watermark minus the stored position; a transactional producer's commit marker takes an offset, so a caught-up partition may show 1.</p>` : ''}
<p class="muted">As of ${formatTime(data.at)}.</p>`;
}

/** The form value naming one dead letter: consumer and message id. */
export const deadLetterRef = (letter: { consumer: string; messageId: string }): string =>
  JSON.stringify([letter.consumer, letter.messageId]);

/** The page of one dead letter. */
export const deadLetterHref = (base: string, letter: { consumer: string; messageId: string }): string =>
  `${base}/dead-letters/show?consumer=${encodeURIComponent(letter.consumer)}&messageId=${encodeURIComponent(letter.messageId)}`;

/** The dead-letter list. */
export function deadLetterList(
  frame: Frame,
  letters: readonly DeadLetter[],
  filter: { consumer: string; topic: string; state: string },
): Html {
  const { base } = frame;
  const write = writeState(frame);
  return html`<form class="search" method="get" action="${base}/dead-letters">
<label>consumer<input type="text" name="consumer" value="${filter.consumer}"></label>
<label>topic<input type="text" name="topic" value="${filter.topic}"></label>
<label>state<input type="text" name="state" value="${filter.state}" placeholder="dead, redrive_requested, redriven"></label>
<button type="submit" class="secondary">Filter</button></form>
${
  letters.length === 0
    ? html`<p class="muted">No dead letter matches.</p>`
    : html`<form method="post" action="${base}/dead-letters/redrive">${csrfField(frame.csrf)}
<table id="dead-letters"><thead><tr><th><input type="checkbox" data-select-all aria-label="select all"></th><th>message id</th><th>consumer</th><th>topic / partition / offset</th><th>reason</th><th>error</th><th class="num">attempts</th><th>when</th><th>state</th></tr></thead><tbody>${letters.map(
        (letter) =>
          html`<tr data-message-id="${letter.messageId}"><td><input type="checkbox" name="id" value="${deadLetterRef(letter)}" aria-label="select ${letter.messageId}" ${letter.state === 'dead' ? '' : 'disabled'}></td><td><a href="${deadLetterHref(base, letter)}">${letter.messageId}</a></td><td>${letter.consumer}</td><td>${letter.topic} / ${letter.partition} / ${letter.offset}</td><td>${letter.reason}</td><td>${truncate(`${letter.errorCode}: ${letter.errorMessage}`, 160)}</td><td class="num">${letter.attempts}</td><td>${formatTime(letter.deadLetteredAt)}</td><td><span class="badge ${letter.state === 'dead' ? 'bad' : letter.state === 'redriven' ? 'ok' : 'warn'}">${letter.state}</span></td></tr>`,
      )}</tbody></table>
<p><button type="submit" ${write.enabled ? '' : html`disabled title="${write.reason}"`}>Redrive selected…</button> ${write.enabled ? '' : html`<span class="muted">${write.reason}</span>`}</p></form>`
}`;
}

/** One dead letter. */
export function deadLetterDetail(frame: Frame, letter: DeadLetterDetail, previewBytes: number): Html {
  const { base } = frame;
  const write = writeState(frame);
  return html`<dl class="kv">
<dt>message id</dt><dd><a href="${base}/where?id=${encodeURIComponent(letter.messageId)}">${letter.messageId}</a></dd>
<dt>consumer</dt><dd>${letter.consumer}</dd>
<dt>topic / partition / offset</dt><dd>${letter.topic} / ${letter.partition} / ${letter.offset}</dd>
<dt>reason</dt><dd>${letter.reason}</dd><dt>attempts</dt><dd>${letter.attempts}</dd>
<dt>dead-lettered</dt><dd>${formatTime(letter.deadLetteredAt)}</dd>
<dt>state</dt><dd><span class="badge" id="dead-letter-state">${letter.state}</span>${letter.redrives > 0 ? html` · ${letter.redrives} redrive${letter.redrives === 1 ? '' : 's'}, last requested ${formatTime(letter.redriveRequestedAt)}, done ${formatTime(letter.redrivenAt)}` : ''}</dd></dl>
<h2>Error</h2><pre class="payload">${letter.errorCode}: ${truncate(letter.errorMessage, previewBytes)}</pre>
<h2>Headers</h2>${
    Object.keys(letter.headers).length > 0
      ? html`<table><tbody>${Object.entries(letter.headers).map(
          ([name, value]) => html`<tr><th>${name}</th><td>${truncate(value.toString('utf8'), 512)}</td></tr>`,
        )}</tbody></table>`
      : html`<p class="muted">none</p>`
  }
<h2>Key</h2>${previewPayload(letter.keyBytes, previewBytes)}
<h2>Value</h2>${previewPayload(letter.payload, previewBytes)}
<form method="post" action="${base}/dead-letters/redrive">${csrfField(frame.csrf)}<input type="hidden" name="id" value="${deadLetterRef(letter)}">
<p><button type="submit" ${write.enabled && letter.state === 'dead' ? '' : html`disabled title="${letter.state === 'dead' ? write.reason : `already ${letter.state}`}"`}>Redrive…</button> ${write.enabled ? '' : html`<span class="muted">${write.reason}</span>`}</p></form>`;
}

/** The confirmation step of a write. */
export function confirmation(
  frame: Frame,
  action: {
    path: string;
    verb: string;
    danger?: boolean;
    what: string;
    ids: readonly string[];
    back: string;
  },
): Html {
  return html`<p>${action.what}</p><ul>${action.ids.slice(0, 50).map((id) => html`<li><code>${id}</code></li>`)}</ul>${
    action.ids.length > 50 ? html`<p class="muted">and ${action.ids.length - 50} more</p>` : ''
  }
<form method="post" action="${frame.base}/${action.path}">${csrfField(frame.csrf)}<input type="hidden" name="confirm" value="yes">${action.ids.map(
    (id) => html`<input type="hidden" name="id" value="${id}">`,
  )}
<button type="submit" class="${action.danger ? 'danger' : ''}">${action.verb}</button> <a href="${action.back}">Cancel</a></form>`;
}

/** The parked-event list. */
export function parkedList(
  frame: Frame,
  events: readonly {
    eventId: string;
    topic: string;
    key: Buffer | null;
    error: string;
    parkedAt: Date;
    lane: number;
    seq: string;
  }[],
): Html {
  const { base } = frame;
  const write = writeState(frame);
  if (events.length === 0) return html`<p class="muted">No event is parked.</p>`;
  return html`<p class="muted">An event is parked when the broker refused it for good (too large, invalid); later events of its key wait behind it. Fix the cause, then unpark; or drop it.</p>
<form method="post" action="${base}/parked/unpark">${csrfField(frame.csrf)}
<table id="parked"><thead><tr><th><input type="checkbox" data-select-all aria-label="select all"></th><th>event id</th><th>topic</th><th>key</th><th>error</th><th>parked</th></tr></thead><tbody>${events.map(
    (event) =>
      html`<tr><td><input type="checkbox" name="id" value="${event.eventId}" aria-label="select ${event.eventId}"></td><td><a href="${base}/where?id=${encodeURIComponent(event.eventId)}">${event.eventId}</a></td><td>${event.topic}</td><td>${event.key === null ? '–' : truncate(event.key.toString('utf8'), 80)}</td><td>${truncate(event.error, 200)}</td><td>${formatTime(event.parkedAt)}</td></tr>`,
  )}</tbody></table>
<p><button type="submit" ${write.enabled ? '' : html`disabled title="${write.reason}"`}>Unpark selected…</button>
<button type="submit" class="danger" formaction="${base}/parked/drop" ${write.enabled ? '' : html`disabled title="${write.reason}"`}>Drop selected…</button>
${write.enabled ? '' : html`<span class="muted">${write.reason}</span>`}</p></form>`;
}

/** The state of the message for one consumer. */
export interface ConsumerVerdict {
  consumer: string;
  state: 'processed' | 'dead-lettered' | 'pending' | 'not-reached' | 'passed';
  detail: Html;
}

/** "Where is message X?". */
export function wherePage(
  frame: Frame,
  query: string,
  trace: MessageTrace | null,
  verdicts: readonly ConsumerVerdict[],
  previewBytes: number,
): Html {
  const { base } = frame;
  const form = html`<form class="search" method="get" action="${base}/where"><label>message id<input type="search" name="id" value="${query}" autofocus></label><button type="submit">Find</button></form>`;
  if (trace === null)
    return html`${form}<p class="muted">Give a message id: the outbox event id, which the relay sends as the <code>message-id</code> header.</p>`;
  const waiting = trace.waiting[0];
  const published = trace.published[0];
  const placed = trace.consumed[0];
  if (
    waiting === undefined &&
    published === undefined &&
    trace.consumed.length === 0 &&
    verdicts.every((v) => v.state !== 'dead-lettered')
  )
    return html`${form}${notice(
      'info',
      html`No trace of <code>${trace.messageId}</code>: it is not waiting in the outbox, not in the published ledger, and no consumer recorded it. Records older than the retention window are gone.`,
    )}`;
  const enqueuedAt = published?.enqueuedAt ?? waiting?.enqueuedAt ?? null;
  const topic = waiting?.topic ?? published?.topic ?? placed?.topic ?? '';
  const steps: Html[] = [];
  steps.push(
    html`<li class="${enqueuedAt ? 'done' : ''}"><strong>Enqueued</strong> ${enqueuedAt ? html`at ${formatTime(enqueuedAt)} (transaction time)` : html`<span class="muted">before the ledger's retention window, or by another producer</span>`} to <code>${topic}</code>${published ? html` · lane ${published.lane}, seq ${published.seq}` : waiting ? html` · lane ${waiting.lane}, seq ${waiting.seq}` : ''}</li>`,
  );
  // Every ledger record: the first publish, then any copy published under the same id (a redrive).
  trace.published.forEach((record, index) => {
    const first = index === 0;
    steps.push(
      html`<li class="done" ${first ? html`id="step-published"` : ''}><strong>${first ? 'Published' : 'Published again'}</strong> at ${formatTime(record.publishedAt)} to <code>${record.topic}</code>${first && placed ? html` partition ${placed.partition}, offset ${placed.offset}` : ''} · relay <code>${record.relay}</code> · latency ${formatMs(record.latencyMs)}${first ? '' : html` <span class="muted">(a copy under the same id, e.g. a dead-letter redrive; enqueued ${formatTime(record.enqueuedAt)})</span>`}</li>`,
    );
  });
  if (waiting?.parkedAt)
    steps.push(
      html`<li class="stuck" ${published ? '' : html`id="step-published"`}><strong>Parked</strong> since ${formatTime(waiting.parkedAt)}: <span class="bad">${truncate(waiting.error ?? '', 500)}</span> · <a href="${base}/parked">parked events</a></li>`,
    );
  else if (waiting)
    steps.push(
      html`<li class="waiting" ${published ? '' : html`id="step-published"`}><strong>Waiting for the relay</strong>: ${waiting.ahead} event${waiting.ahead === 1 ? '' : 's'} ahead of it in lane ${waiting.lane}</li>`,
    );
  else if (!published)
    steps.push(
      html`<li class="done" id="step-published"><strong>Published</strong> to <code>${topic}</code>${placed ? html` partition ${placed.partition}, offset ${placed.offset}` : ''} <span class="muted">(not in the ledger: published by another producer or before its window)</span></li>`,
    );
  steps.push(
    html`<li class="${verdicts.length > 0 && verdicts.every((v) => v.state === 'processed') ? 'done' : verdicts.some((v) => v.state === 'dead-lettered') ? 'stuck' : 'waiting'}"><strong>Consumers</strong>${
      verdicts.length === 0
        ? html` <span class="muted">none has stored a position in <code>${topic}</code></span>`
        : html`<table id="consumers-of-message"><thead><tr><th>consumer</th><th>state</th><th>details</th></tr></thead><tbody>${verdicts.map(
            (v) =>
              html`<tr data-consumer="${v.consumer}"><td>${v.consumer}</td><td><span class="badge ${v.state === 'processed' ? 'ok' : v.state === 'dead-lettered' ? 'bad' : 'warn'}" data-state>${v.state}</span></td><td>${v.detail}</td></tr>`,
          )}</tbody></table>`
    }</li>`,
  );
  return html`${form}<h2>Message <code>${trace.messageId}</code></h2><ol class="path">${steps}</ol>${
    waiting
      ? html`<h2>Payload</h2>${waiting.key ? html`<p>key</p>${previewPayload(waiting.key, previewBytes)}` : ''}<p>value</p>${previewPayload(waiting.value, previewBytes, waiting.valueBytes ?? 0)}`
      : ''
  }`;
}

/** The idempotency-key lookup. */
export function keysPage(
  frame: Frame,
  query: { scope: string; key: string },
  keys:
    | readonly (IdempotencyKeyInfo &
        Partial<Pick<IdempotencyKeyDetail, 'requestId' | 'responseHeaders' | 'responseBytes'>>)[]
    | null,
  previewBytes: number,
): Html {
  const form = html`<form class="search" method="get" action="${frame.base}/keys"><label>scope<input type="text" name="scope" value="${query.scope}"></label><label>key<input type="search" name="key" value="${query.key}"></label><button type="submit">Look up</button></form>`;
  if (keys === null)
    return html`${form}<p class="muted">Give a scope (the principal or tenant) and optionally a key.</p>`;
  if (keys.length === 0)
    return html`${form}${notice('info', 'No such key (completed keys are reaped after their expiry).')}`;
  return html`${form}${keys.map(
    (k) => html`<h2><code>${k.scope}</code> / <code>${k.key}</code></h2><dl class="kv">
<dt>state</dt><dd><span class="badge ${k.state === 'completed' ? 'ok' : 'warn'}">${k.state}</span></dd>
<dt>route</dt><dd>${k.route}</dd><dt>recovery point</dt><dd>${k.recoveryPoint}</dd>
<dt>response status</dt><dd>${k.responseStatus ?? '–'}</dd><dt>created</dt><dd>${formatTime(k.createdAt)}</dd>
<dt>updated</dt><dd>${formatTime(k.updatedAt)}</dd><dt>lease until</dt><dd>${formatTime(k.lockedUntil)}</dd>
<dt>expires</dt><dd>${formatTime(k.expiresAt)}</dd><dt>request id</dt><dd>${k.requestId ?? '–'}</dd>
<dt>stored response</dt><dd>${k.responseBytes === null || k.responseBytes === undefined ? '–' : `${k.responseBytes} bytes`}</dd></dl>${
      k.responseHeaders
        ? html`<h3>Stored response headers</h3><table><tbody>${Object.entries(k.responseHeaders).map(
            ([name, value]) =>
              html`<tr><th>${name}</th><td>${truncate(String(value), previewBytes)}</td></tr>`,
          )}</tbody></table>`
        : ''
    }`,
  )}`;
}

/** The sign-in form. */
export function loginPage(frame: Frame, failed: boolean, next: string): Html {
  return html`${failed ? notice('error', 'That is not the access token.') : ''}
<form method="post" action="${frame.base}/login"><input type="hidden" name="next" value="${next}"><label>access token<input type="password" name="token" autocomplete="current-password" autofocus></label><p><button type="submit">Sign in</button></p></form>`;
}

/** Cuts `text` to `max` characters, marking the cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}
