import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Tests import the workspace packages from their TypeScript sources (the `@onceflow/source` export
  // condition), so no build is needed between an edit and a test run; test/package tests the built ones.
  ssr: { resolve: { conditions: ['@onceflow/source', 'module', 'node', 'development|production'] } },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'test/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
      'bench/test/**/*.test.ts',
    ],
    // The fault suite starts and breaks servers of its own: `pnpm test:faults` runs it. The transport
    // conformance suite runs each scenario for every Kafka adapter on Node 24: `pnpm test:conformance`.
    exclude: ['test/faults/**', 'test/conformance/**', '**/node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    // Real brokers and databases: waiting is normal, speed is asserted nowhere (bench/ measures it).
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
