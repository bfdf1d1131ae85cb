import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { sourceAliases } from '../../vite.config';
import { PAGE_DIR } from './paths';

const here = fileURLToPath(new URL('.', import.meta.url));

/** Builds the bench page (page/): Tideline through `tideline/client` and `tideline/schema`, as an app imports it. */
export default defineConfig({
  root: `${here}page`,
  resolve: { alias: sourceAliases },
  logLevel: 'warn',
  // Not minified: a page's CPU profile (`--cpu-prof`) then names Tideline's own functions.
  build: { outDir: PAGE_DIR, emptyOutDir: true, minify: false },
});
