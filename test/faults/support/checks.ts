// The checks of a fault run, as a pure function of what was read after heal-and-drain: Postgres's
// record of committed events, the topic as a read_committed consumer sees it, and the consumers'
// effect rows. Each broken invariant becomes one line of `violations`.
import type { SeenRecord } from './kafka-tools';
import { type EventValue, rolledBackPrefix } from './workload';

/** What the checks read after the run. */
export interface RunObservation {
  /** Events of committed transactions (the `produced` table). */
  produced: ReadonlyArray<{ eventId: string; key: string; ordinal: number }>;
  /** Every record of the workload topic, read_committed. */
  records: readonly SeenRecord[];
  /** Effect rows per message id, for one consumer. */
  effects: ReadonlyMap<string, number>;
  /** The consumer's stored next offset per partition. */
  positions: ReadonlyMap<number, bigint>;
  /** Sum of the dead-letter topic's end offsets: 0 when nothing was ever written to it. */
  deadLetters: number;
  /** Outbox rows parked by the relay. */
  parked: number;
}

/** The figures a run reports. */
export interface RunFigures {
  committedEvents: number;
  kafkaRecords: number;
  /** Events of committed transactions that are not on Kafka. */
  eventsLost: number;
  /** Records on Kafka that no committed transaction wrote (rolled back, or foreign). */
  phantomEvents: number;
  /** Records beyond the first of each id: redeliveries of the same event. */
  kafkaDuplicates: number;
  /** Keys whose records, first occurrences in log order, are not in commit order. */
  keysOutOfOrder: number;
  /** Committed events without an effect. */
  effectsMissing: number;
  /** Effect rows beyond the first per message. */
  doubleEffects: number;
  /** Effects of messages no committed transaction wrote. */
  phantomEffects: number;
  /** Records at or above the consumer's stored position, summed over partitions. */
  lag: number;
  deadLetters: number;
  parked: number;
}

function parseValue(value: string): EventValue | undefined {
  try {
    const parsed = JSON.parse(value) as Partial<EventValue>;
    return typeof parsed.id === 'string' &&
      typeof parsed.key === 'string' &&
      typeof parsed.ordinal === 'number'
      ? (parsed as EventValue)
      : undefined;
  } catch {
    return undefined;
  }
}

const preview = (items: readonly string[]): string =>
  `${items.slice(0, 5).join(', ')}${items.length > 5 ? `, … (${items.length} in all)` : ''}`;

/** Evaluates one run: the figures, and one line per broken invariant. */
export function evaluateRun(run: RunObservation): { figures: RunFigures; violations: string[] } {
  const violations: string[] = [];
  const committed = new Map(run.produced.map((p) => [p.eventId, p]));
  // Log order, with the suite's own injected copies after every original: a copy written to another
  // partition on purpose says nothing about the order the relay kept.
  const sorted = [...run.records].sort(
    (a, b) =>
      Number(a.injected) - Number(b.injected) ||
      a.partition - b.partition ||
      (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0),
  );

  const firstById = new Map<string, SeenRecord>();
  const conflicting: string[] = [];
  let duplicates = 0;
  for (const record of sorted) {
    const first = firstById.get(record.id);
    if (first === undefined) {
      firstById.set(record.id, record);
      continue;
    }
    duplicates++;
    // A redelivery repeats the same event; the same id on other content would be two events.
    if (first.key !== record.key || first.value !== record.value) conflicting.push(record.id);
  }
  if (conflicting.length > 0)
    violations.push(`same message id on different content: ${preview(conflicting)}`);

  const lost = [...committed.keys()].filter((id) => !firstById.has(id));
  if (lost.length > 0) violations.push(`committed events missing on Kafka: ${preview(lost)}`);
  const phantoms = [...firstById.keys()].filter((id) => !committed.has(id));
  if (phantoms.length > 0)
    violations.push(`events on Kafka that no committed transaction wrote: ${preview(phantoms)}`);
  const rolledBack = phantoms.filter((id) => id.startsWith(rolledBackPrefix));
  if (rolledBack.length > 0)
    violations.push(`events of rolled-back transactions on Kafka: ${preview(rolledBack)}`);

  const corrupt: string[] = [];
  const ordinalsByKey = new Map<string, number[]>();
  for (const record of firstById.values()) {
    const value = parseValue(record.value);
    const truth = committed.get(record.id);
    if (value === undefined || value.id !== record.id || value.key !== record.key) {
      corrupt.push(record.id);
      continue;
    }
    if (truth !== undefined && truth.ordinal !== value.ordinal) corrupt.push(record.id);
    const list = ordinalsByKey.get(value.key) ?? [];
    if (list.length === 0) ordinalsByKey.set(value.key, list);
    list.push(value.ordinal);
  }
  if (corrupt.length > 0) violations.push(`records whose value does not match their id: ${preview(corrupt)}`);
  // firstById keeps log order per partition, and one key lives in one partition.
  const outOfOrder: string[] = [];
  for (const [key, ordinals] of ordinalsByKey)
    if (ordinals.some((ordinal, i) => i > 0 && ordinal <= ordinals[i - 1]!))
      outOfOrder.push(`${key} [${ordinals.slice(0, 12).join(',')}${ordinals.length > 12 ? ',…' : ''}]`);
  if (outOfOrder.length > 0) violations.push(`keys published out of commit order: ${preview(outOfOrder)}`);

  const missingEffects = [...firstById.keys()].filter((id) => !run.effects.has(id));
  if (missingEffects.length > 0) violations.push(`messages without an effect: ${preview(missingEffects)}`);
  const doubled = [...run.effects].filter(([, count]) => count > 1);
  const doubleEffects = doubled.reduce((sum, [, count]) => sum + count - 1, 0);
  if (doubled.length > 0)
    violations.push(`messages with more than one effect: ${preview(doubled.map(([id, n]) => `${id}×${n}`))}`);
  const phantomEffects = [...run.effects.keys()].filter((id) => !committed.has(id));
  if (phantomEffects.length > 0)
    violations.push(`effects of events no committed transaction wrote: ${preview(phantomEffects)}`);

  let lag = 0;
  for (const record of sorted) if (record.offset >= (run.positions.get(record.partition) ?? 0n)) lag++;
  if (lag > 0) violations.push(`consumer lag after drain: ${lag} records at or above the stored positions`);
  if (run.deadLetters > 0)
    violations.push(
      `the dead-letter topic was written to (end offsets sum ${run.deadLetters}); no handler fails in this workload`,
    );
  if (run.parked > 0) violations.push(`${run.parked} outbox events parked (every topic exists)`);

  return {
    figures: {
      committedEvents: committed.size,
      kafkaRecords: sorted.length,
      eventsLost: lost.length,
      phantomEvents: phantoms.length,
      kafkaDuplicates: duplicates,
      keysOutOfOrder: outOfOrder.length,
      effectsMissing: [...committed.keys()].filter((id) => !run.effects.has(id)).length,
      doubleEffects,
      phantomEffects: phantomEffects.length,
      lag,
      deadLetters: run.deadLetters,
      parked: run.parked,
    },
    violations,
  };
}
