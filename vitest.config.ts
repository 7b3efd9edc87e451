import { defineConfig } from 'vitest/config';

// Test files run in parallel forks; each gets its own PostgreSQL database from the template
// that the global setup migrates once (see test/harness/postgres.global.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/postgres.global.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    // The JSON file feeds the one-line totals that .ci/run prints; the terminal gets the default report.
    reporters: ['default', 'json'],
    outputFile: { json: 'var/test-results.json' },
  },
});
