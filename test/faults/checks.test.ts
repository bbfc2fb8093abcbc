// The checks are what make a fault scenario fail: each must catch the anomaly it names, and a clean
// run must pass them.
import { describe, expect, it } from 'vitest';
import { evaluateRun, type RunObservation } from './support/checks';
import type { SeenRecord } from './support/kafka-tools';

function record(partition: number, offset: number, id: string, key: string, ordinal: number): SeenRecord {
  return {
    partition,
    offset: BigInt(offset),
    id,
    key,
    value: JSON.stringify({ id, key, ordinal }),
    injected: false,
  };
}

/** Two keys on two partitions, three committed events, each applied once. */
function cleanRun(): RunObservation {
  return {
    produced: [
      { eventId: 'a1', key: 'a', ordinal: 1 },
      { eventId: 'a2', key: 'a', ordinal: 2 },
      { eventId: 'b1', key: 'b', ordinal: 1 },
    ],
    records: [record(0, 0, 'a1', 'a', 1), record(0, 1, 'a2', 'a', 2), record(1, 0, 'b1', 'b', 1)],
    effects: new Map([
      ['a1', 1],
      ['a2', 1],
      ['b1', 1],
    ]),
    positions: new Map([
      [0, 2n],
      [1, 1n],
    ]),
    deadLetters: 0,
    parked: 0,
  };
}

describe('fault-suite checks', () => {
  it('a clean run has no violation and zero figures', () => {
    const { figures, violations } = evaluateRun(cleanRun());
    expect(violations).toEqual([]);
    expect(figures).toMatchObject({
      committedEvents: 3,
      eventsLost: 0,
      doubleEffects: 0,
      kafkaDuplicates: 0,
    });
  });

  it('a committed event missing on Kafka is a lost event', () => {
    const run = cleanRun();
    run.records = run.records.filter((r) => r.id !== 'a2');
    const { figures, violations } = evaluateRun(run);
    expect(figures.eventsLost).toBe(1);
    expect(violations.join('\n')).toMatch(/committed events missing on Kafka: a2/);
  });

  it('a record of a rolled-back transaction is reported as such', () => {
    const run = cleanRun();
    run.records = [...run.records, record(1, 1, 'rb-x', 'b', 2)];
    run.positions = new Map([
      [0, 2n],
      [1, 2n],
    ]);
    run.effects = new Map([...run.effects, ['rb-x', 1]]);
    const { figures, violations } = evaluateRun(run);
    expect(figures.phantomEvents).toBe(1);
    expect(figures.phantomEffects).toBe(1);
    expect(violations.join('\n')).toMatch(/events of rolled-back transactions on Kafka: rb-x/);
  });

  it('a key published against commit order is caught', () => {
    const run = cleanRun();
    run.records = [record(0, 0, 'a2', 'a', 2), record(0, 1, 'a1', 'a', 1), record(1, 0, 'b1', 'b', 1)];
    const { figures, violations } = evaluateRun(run);
    expect(figures.keysOutOfOrder).toBe(1);
    expect(violations.join('\n')).toMatch(/keys published out of commit order: a \[2,1\]/);
  });

  it('a same-id redelivery counts as a Kafka duplicate and is allowed; the same id on other content is not', () => {
    const run = cleanRun();
    run.records = [...run.records, record(0, 2, 'a1', 'a', 1)];
    run.positions = new Map([
      [0, 3n],
      [1, 1n],
    ]);
    const redelivered = evaluateRun(run);
    expect(redelivered.figures.kafkaDuplicates).toBe(1);
    expect(redelivered.violations).toEqual([]);

    run.records = [...run.records, { ...record(0, 3, 'a1', 'a', 1), value: 'other' }];
    run.positions = new Map([
      [0, 4n],
      [1, 1n],
    ]);
    expect(evaluateRun(run).violations.join('\n')).toMatch(/same message id on different content: a1/);
  });

  it('copies injected into other partitions count as duplicates but not as order violations', () => {
    const run = cleanRun();
    run.records = [...run.records, { ...record(1, 1, 'a2', 'a', 2), injected: true }];
    run.records = [...run.records, { ...record(1, 2, 'a1', 'a', 1), injected: true }];
    run.positions = new Map([
      [0, 2n],
      [1, 3n],
    ]);
    const { figures, violations } = evaluateRun(run);
    expect(violations).toEqual([]);
    expect(figures.kafkaDuplicates).toBe(2);
  });

  it('a message applied twice, or not at all, is caught', () => {
    const run = cleanRun();
    run.effects = new Map([
      ['a1', 2],
      ['b1', 1],
    ]);
    const { figures, violations } = evaluateRun(run);
    expect(figures.doubleEffects).toBe(1);
    expect(figures.effectsMissing).toBe(1);
    expect(violations.join('\n')).toMatch(/more than one effect: a1×2/);
    expect(violations.join('\n')).toMatch(/messages without an effect: a2/);
  });

  it('records at or above the stored positions are lag; dead letters and parked events are violations', () => {
    const run = cleanRun();
    run.positions = new Map([[0, 1n]]);
    run.deadLetters = 2;
    run.parked = 1;
    const { figures, violations } = evaluateRun(run);
    expect(figures.lag).toBe(2);
    expect(violations).toHaveLength(3);
  });
});
