import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const repo = fileURLToPath(new URL('.', import.meta.url));

/**
 * Builds the storefront (client/app) into dist/, which the server serves
 * (`--static`, default ./dist). client/app/public/sw.js, the app-shell
 * service worker, is copied as is to dist/sw.js. Libraries go in their own
 * chunks, so a change to the app alone leaves them cached in browsers.
 */
export default defineConfig({
  root: `${repo}client/app`,
  plugins: [react()],
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
