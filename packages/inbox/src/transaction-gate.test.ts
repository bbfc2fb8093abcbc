import { describe, expect, it } from 'vitest';
import { initialQuietMs, maxQuietMs, TransactionGate } from './transaction-gate';

describe('TransactionGate', () => {
  it('lets transactions run concurrently until one loses a race', async () => {
    const gate = new TransactionGate(() => 1_000);
    const first = await gate.enter();
    const second = await gate.enter();
    expect(gate.serial).toBe(false);
    first();
    second();
  });

  it('runs transactions one at a time, in arrival order, for a while after a lost race', async () => {
    let now = 1_000;
    const gate = new TransactionGate(() => now);
    gate.lostRace();
    expect(gate.serial).toBe(true);
    const order: string[] = [];
    const leaveA = await gate.enter();
    const b = gate.enter().then((leave) => {
      order.push('b');
      return leave;
    });
    const c = gate.enter().then((leave) => {
      order.push('c');
      return leave;
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(order).toEqual([]);
    leaveA();
    const leaveB = await b;
    expect(order).toEqual(['b']);
    leaveB();
    (await c)();
    expect(order).toEqual(['b', 'c']);
    now += initialQuietMs;
    expect(gate.serial).toBe(false);
  });

  it('starts the first serialised transaction only once the concurrent ones in flight ended', async () => {
    let now = 1_000;
    const gate = new TransactionGate(() => now);
    const leaveConcurrent = await gate.enter();
    gate.lostRace();
    let entered = false;
    const serial = gate.enter().then((leave) => {
      entered = true;
      return leave;
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(entered).toBe(false);
    leaveConcurrent();
    leaveConcurrent();
    (await serial)();
    expect(entered).toBe(true);
    now += initialQuietMs;
  });

  it('doubles the quiet period when races are lost again soon after one, up to the maximum', () => {
    let now = 0;
    const gate = new TransactionGate(() => now);
    const periods: number[] = [];
    for (let i = 0; i < 6; i++) {
      gate.lostRace();
      const start = now;
      while (gate.serial) now += 100;
      periods.push(now - start);
      now += 100;
    }
    expect(periods).toEqual([
      initialQuietMs,
      initialQuietMs * 2,
      initialQuietMs * 4,
      initialQuietMs * 8,
      initialQuietMs * 16,
      maxQuietMs,
    ]);
  });
});
