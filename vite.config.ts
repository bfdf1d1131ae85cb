import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const repo = fileURLToPath(new URL('.', import.meta.url));

/** Builds the demo web app (client/app) into dist/, which the server serves (`--static`, default ./dist). */
export default defineConfig({
  root: `${repo}client/app`,
  plugins: [react()],
  build: {
    outDir: `${repo}dist`,
    emptyOutDir: true,
  },
});
