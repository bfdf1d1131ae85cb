import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { removeDir, startServerProcess, TEST_ADMIN_TOKEN } from '../../test/support/server-process';

/** The built web app; `npm run test:e2e` builds it before Playwright starts. This helper builds nothing. */
export const DIST_DIR = fileURLToPath(new URL('../../dist', import.meta.url));

const adminStatusSchema = z.object({ headLsn: z.number(), connectedClients: z.number() });
export type AdminStatus = z.infer<typeof adminStatusSchema>;

export interface AppServer {
  /** `http://127.0.0.1:PORT`: not localhost, so socket.io closes its socket on the page's `offline` event. */
  url: string;
  /** GET /admin/status with the test admin token. */
  adminStatus(): Promise<AdminStatus>;
  /** Everything the server printed. */
  output(): string;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * Starts `server/main.ts` as a real process on 127.0.0.1, on a free port, in a
 * fresh temporary data directory seeded with the demo data (2,000 products
 * and a welcome note), serving the built app from dist/.
 */
export async function startAppServer(): Promise<AppServer> {
  if (!existsSync(`${DIST_DIR}/index.html`)) {
    throw new Error(`${DIST_DIR}/index.html is missing: run \`npm run build\` first (\`npm run test:e2e\` does)`);
  }
  // The later --static overrides the helper's default (no static files).
  const server = await startServerProcess({ args: ['--static', DIST_DIR] });
  const url = server.url; // the server listens on 127.0.0.1 by default
  return {
    url,
    async adminStatus() {
      const res = await fetch(`${url}/admin/status`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
      if (!res.ok) throw new Error(`GET /admin/status: HTTP ${res.status}`);
      return adminStatusSchema.parse(await res.json());
    },
    output: () => server.output(),
    async stop() {
      await server.stop();
      removeDir(server.dataDir);
    },
  };
}
