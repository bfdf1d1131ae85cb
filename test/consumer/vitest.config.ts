import { defineConfig } from 'vitest/config';

/**
 * The consumer test alone (npm run test:consumer): it packs the package,
 * installs it into a fresh project and builds and runs that project, so it
 * runs by itself rather than beside the unit tests on a busy machine.
 */
export default defineConfig({
  test: {
    environment: 'node',
    include: ['test/consumer/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 240_000,
    pool: 'forks',
  },
});
