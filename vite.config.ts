import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const repo = fileURLToPath(new URL('.', import.meta.url));

/**
 * Inside this repository the package's own names (`tideline/client`, ...)
 * resolve to the TypeScript sources, so the storefront imports Tideline
 * exactly as an app that installed the package does, with no build of lib/
 * first. tsconfig.json `paths` says the same to TypeScript and ESLint, and
 * vitest.config.ts reuses this list; keep them in step with package.json
 * `exports`.
 */
export const sourceAliases = [
  { find: /^tideline\/client$/, replacement: `${repo}client/index.ts` },
  { find: /^tideline\/schema$/, replacement: `${repo}shared/index.ts` },
  { find: /^tideline\/react$/, replacement: `${repo}client/react/index.ts` },
  { find: /^tideline\/server$/, replacement: `${repo}server/index.ts` },
];

/**
 * Builds the storefront (client/app) into dist/, which the server serves
 * (`--static`, default ./dist). client/app/public/sw.js, the app-shell
 * service worker, is copied as is to dist/sw.js. Libraries go in their own
 * chunks, so a change to the app alone leaves them cached in browsers.
 */
export default defineConfig({
  root: `${repo}client/app`,
  plugins: [react()],
  resolve: { alias: sourceAliases },
  build: {
    outDir: `${repo}dist`,
    emptyOutDir: true,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'react', test: /node_modules[\\/](react|react-dom|scheduler)[\\/]/ },
            { name: 'vendor', test: /node_modules[\\/]/ },
          ],
        },
      },
    },
  },
});
