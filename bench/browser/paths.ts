import { fileURLToPath } from 'node:url';

/** Where `npm run bench:browser` builds the bench page (git-ignored); the bench server serves it (`--static`). */
export const PAGE_DIR = fileURLToPath(new URL('../results/tmp/browser-page', import.meta.url));
