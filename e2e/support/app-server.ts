import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Doc } from '../../shared/json';
import { removeDir, startServerProcess, TEST_ADMIN_TOKEN } from '../../test/support/server-process';
import type { ServerProcess } from '../../test/support/server-process';

/** The built web app; `npm run test:e2e` builds it before Playwright starts. This helper builds nothing. */
export const DIST_DIR = fileURLToPath(new URL('../../dist', import.meta.url));

const adminStatusSchema = z.object({ headLsn: z.number(), connectedClients: z.number() });
export type AdminStatus = z.infer<typeof adminStatusSchema>;

const querySchema = z.object({ docs: z.array(z.looseObject({ id: z.string() })) });
const loginSchema = z.object({ token: z.string() });

export interface AppServer {
  /** `http://127.0.0.1:PORT`: not localhost, so socket.io closes its socket on the page's `offline` event. */
  url: string;
  /** GET /admin/status with the test admin token. */
  adminStatus(): Promise<AdminStatus>;
  /**
   * GET /query/<collection> with `filter=field:op:value` filters, as `user`
   * (a dev-login token; owner-only collections need one, and `staff` reads
   * every order).
   */
  query(collection: string, filters?: string[], user?: string): Promise<Doc[]>;
  /** The primary's current version of a product. */
  product(id: string): Promise<Doc | undefined>;
  /** Stops the server process (SIGTERM); its data directory and port stay reserved for `resume`. */
  halt(): Promise<void>;
  /** Starts the server again on the same port with the same data directory. */
  resume(): Promise<void>;
  /** Everything the server printed, across restarts. */
  output(): string;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * Starts `server/main.ts` as a real process on 127.0.0.1, on a free port, in a
 * fresh temporary data directory seeded with the demo data (2,000 products
 * and a welcome note), serving the built app from dist/, with the dev login on.
 */
export async function startAppServer(): Promise<AppServer> {
  if (!existsSync(`${DIST_DIR}/index.html`)) {
    throw new Error(`${DIST_DIR}/index.html is missing: run \`npm run build\` first (\`npm run test:e2e\` does)`);
  }
  // The later --static overrides the helper's default (no static files); the storefront signs in with the dev login.
  const args = ['--static', DIST_DIR, '--dev-login'];
  let server: ServerProcess | null = await startServerProcess({ args });
  const { url, dataDir } = server;
  const port = Number(new URL(url).port);
  let earlier = '';
  const tokens = new Map<string, string>();

  const token = async (user: string): Promise<string> => {
    const known = tokens.get(user);
    if (known) return known;
    const res = await fetch(`${url}/auth/dev-login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user }),
    });
    if (!res.ok) throw new Error(`POST /auth/dev-login: HTTP ${res.status}`);
    const { token: fresh } = loginSchema.parse(await res.json());
    tokens.set(user, fresh);
    return fresh;
  };

  const query = async (collection: string, filters: string[] = [], user?: string): Promise<Doc[]> => {
    const params = new URLSearchParams([...filters.map((f) => ['filter', f]), ['limit', '1000']]);
    const headers: Record<string, string> = user ? { authorization: `Bearer ${await token(user)}` } : {};
    const res = await fetch(`${url}/query/${collection}?${params}`, { headers });
    if (!res.ok) throw new Error(`GET /query/${collection}: HTTP ${res.status} ${await res.text()}`);
    return querySchema.parse(await res.json()).docs as Doc[];
  };

  return {
    url,
    async adminStatus() {
      const res = await fetch(`${url}/admin/status`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
      if (!res.ok) throw new Error(`GET /admin/status: HTTP ${res.status}`);
      return adminStatusSchema.parse(await res.json());
    },
    query,
    async product(id) {
      return (await query('products', [`id:eq:${id}`]))[0];
    },
    async halt() {
      if (!server) return;
      await server.stop();
      earlier += server.output();
      server = null;
    },
    async resume() {
      if (server) throw new Error('the server is running');
      server = await startServerProcess({ dataDir, port, args });
    },
    output: () => earlier + (server?.output() ?? ''),
    async stop() {
      await server?.stop();
      server = null;
      removeDir(dataDir);
    },
  };
}
