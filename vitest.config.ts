import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Several tests walk through many CLI commands, each a node process; on a loaded 2-core
    // machine that takes minutes, not seconds. A limit only stops a hung test.
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The CI machine has 2 cores; each test file gets its own database.
    maxWorkers: 2,
    fileParallelism: true,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
