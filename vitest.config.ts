import { configDefaults, defineConfig } from 'vitest/config';
import { sourceAliases } from './vite.config';

export default defineConfig({
  resolve: { alias: sourceAliases },
  test: {
    environment: 'node',
    include: ['{client,server,shared,bench,test}/**/*.test.ts'],
    // Packs and installs the package: its own script, npm run test:consumer.
    exclude: [...configDefaults.exclude, 'test/consumer/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
