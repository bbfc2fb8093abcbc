import { describe, expect, it } from 'vitest';
import { describeSchedule, planRun } from '../src/chaos';

describe('chaos schedule', () => {
  it('is reproducible: the same seed plans the same orders and faults', () => {
    const a = planRun({ seed: 42, orders: 500, chaos: true });
    const b = planRun({ seed: 42, orders: 500, chaos: true });
    expect(b).toEqual(a);
    expect(describeSchedule(b)).toEqual(describeSchedule(a));
    expect(planRun({ seed: 43, orders: 500, chaos: true })).not.toEqual(a);
  });

  it('plans every kind of fault with chaos on, none with chaos off, and one poison order either way', () => {
    const on = planRun({ seed: 7, orders: 300, chaos: true });
    const kinds = new Set(on.actions.map((a) => a.kind));
    expect([...kinds].sort()).toEqual(['inject-duplicates', 'kill-consumer', 'kill-relay']);
    expect(
      new Set(on.actions.filter((a) => a.kind === 'inject-duplicates').map((a) => a.consumer)).size,
    ).toBe(3);
    expect(on.selfKill).toBeDefined();
    expect(on.orders.some((o) => o.timeout)).toBe(true);
    expect(on.orders.some((o) => o.copies > 1)).toBe(true);
    const off = planRun({ seed: 7, orders: 300, chaos: false });
    expect(off.actions).toEqual([]);
    expect(off.selfKill).toBeUndefined();
    expect(off.orders.every((o) => !o.timeout && o.copies === 1)).toBe(true);
    for (const plan of [on, off])
      expect(plan.orders.filter((o) => o.customer === 'poison-pill').map((o) => o.index)).toEqual([
        plan.poisonIndex,
      ]);
  });
});
