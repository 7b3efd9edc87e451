import { defineConfig } from 'vitest/config';

// Test files run in parallel forks; each gets its own PostgreSQL database from the template
// that the global setup migrates once (see test/harness/postgres.global.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/postgres.global.ts'],
    pool: 'forks',
    // Most of a test's time is spent waiting on real services (PostgreSQL, sshd, nginx, Chromium),
    // not on the CPU, so three files at a time fit a 2-CPU machine; ARCHWAY_TEST_WORKERS overrides.
    maxWorkers: Number(process.env.ARCHWAY_TEST_WORKERS ?? 3),
    // 60 s: three files share two CPUs, and a CPU-bound test (PGlite opens, property tests) slows with them.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    // The JSON file feeds the one-line totals that .ci/run prints; the terminal gets the default report.
    reporters: ['default', 'json'],
    outputFile: { json: 'var/test-results.json' },
  },
});
