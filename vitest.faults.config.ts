import { defineConfig } from 'vitest/config';

// The fault suite (`pnpm test:faults`): each file starts a Postgres and a Kafka broker of its own,
// which it restarts, kills and stalls, so it needs no shared services and runs apart from `pnpm test`.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    // Empties test/faults/results/ first; gathers the scenarios' figures into summary.json at the end.
    globalSetup: ['test/faults/support/report.ts'],
    // Scenarios wait for servers and drains; waiting is normal, speed is asserted nowhere.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // Two files at a time, each with its own broker, Postgres and half a dozen Node processes: their
    // scenarios mostly wait (for servers, rebalances, drains), so two overlap well on two cores.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
