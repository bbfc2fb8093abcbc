import { defineConfig } from 'vitest/config';

// The transport conformance suite (`pnpm test:conformance`): the scenarios that define what a Kafka
// client adapter must guarantee, written once and run for each adapter (test/conformance/adapters.ts).
// @platformatic/kafka needs Node >= 22.22 or >= 24.6, so CI runs it on Node 24 (.ci/run).
export default defineConfig({
  // Workspace packages from their TypeScript sources, as in vitest.config.ts.
  ssr: { resolve: { conditions: ['@onceflow/source', 'module', 'node', 'development|production'] } },
  test: {
    include: ['test/conformance/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Real brokers and databases: waiting is normal, speed is asserted nowhere (bench/ measures it).
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
