import { defineConfig } from 'tsup';

/**
 * Builds the npm package `tideline` into lib/ (ESM + .d.ts): one entry per
 * subpath of package.json `exports`, and the `tideline` bin.
 *
 * All entries are built together with code splitting, so a module used by
 * several entries (shared/errors.ts: TidelineError) exists once in lib/.
 * That matters: an app's schema module imports `tideline/schema` and the
 * server imports its own code; two copies of TidelineError would make the
 * server's `instanceof TidelineError` miss an app mutator's rejection.
 *
 * Dependencies and peer dependencies are never bundled (tsup's default):
 * dexie, zod and react come from the app, so it bundles one copy of each.
 */
export default defineConfig({
  entry: {
    'client/index': 'client/index.ts',
    'schema/index': 'shared/index.ts',
    'server/index': 'server/index.ts',
    'react/index': 'client/react/index.ts',
    // The `tideline` bin (package.json `bin`); server/cli.ts starts with
    // `#!/usr/bin/env node`, which esbuild keeps.
    cli: 'server/cli.ts',
  },
  outDir: 'lib',
  format: ['esm'],
  platform: 'node',
  target: 'es2022',
  dts: true,
  splitting: true,
  clean: true,
  treeshake: true,
});
