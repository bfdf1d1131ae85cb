import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { Server } from 'socket.io';
import { storeSchema } from '../shared/apps/store';
import { systemClock } from '../shared/clock';
import type { AppSchema } from '../shared/schema/define-schema';
import { verifyToken } from './auth/tokens';
import type { ServerConfig } from './config';
import { adminRoutes, authRoutes } from './http/routes';
import { loadOrCreateSecret } from './secrets';
import { seedDemoData } from './seed';
import { openSqliteStore } from './store/sqlite-store';
import { startCompaction } from './sync/compaction';
import { attachSync } from './sync/socket-sync';
import { SyncCore } from './sync/sync-core';

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The composition root: wires the SQLite store, the sync core, Socket.IO and Express into one HTTP server. */
export async function startServer(config: ServerConfig, schema: AppSchema = storeSchema): Promise<RunningServer> {
  const clock = systemClock;
  const store = openSqliteStore(join(config.dataDir, 'tideline.db'));
  const secret = loadOrCreateSecret(config.dataDir, 'secret.key', config.secret);
  const adminToken = loadOrCreateSecret(config.dataDir, 'admin.token', config.adminToken);
  if (config.seed) seedDemoData(store, clock.now());

  const core = new SyncCore({
    store,
    schema,
    clock,
    limits: config.limits,
    schedule: (fn) => setImmediate(fn),
    verifyToken: (token) => {
      const claims = verifyToken(secret, token, clock.now());
      return { userId: claims.sub, roles: claims.roles };
    },
  });
  const stopCompaction = startCompaction(core, store, clock, {
    maxLogChanges: config.maxLogChanges,
    maxLogAgeMs: config.maxLogAgeMs,
    intervalMs: config.compactionIntervalMs,
  });

  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '1mb' }));
  const deps = { store, core, secret, adminToken, staff: config.staff, now: () => clock.now(), startedAt: clock.now() };
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.use('/auth', authRoutes(deps));
  app.use('/admin', adminRoutes(deps));
  const staticDir = resolve(config.staticDir);
  if (existsSync(staticDir)) {
    app.use(express.static(staticDir));
    app.get('/{*splat}', (_req, res) => res.sendFile(join(staticDir, 'index.html')));
  }
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = typeof err === 'object' && err !== null && 'status' in err ? Number(err.status) : 500;
    res.status(status).json({
      error: { code: status < 500 ? 'BAD_REQUEST' : 'INTERNAL', message: 'request failed', retryable: status >= 500 },
    });
  });

  const http = createServer(app);
  // Socket.IO drops a connection whose message is over this; the sync core answers TOO_LARGE well below it.
  const io = new Server(http, { maxHttpBufferSize: config.limits.maxMessageBytes * 2, serveClient: false });
  attachSync(io.of('/sync'), core);

  await new Promise<void>((ok, fail) => {
    http.once('error', fail);
    http.listen(config.port, config.host, () => ok());
  });
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://${config.host}:${port}`,
    port,
    async close() {
      stopCompaction();
      await io.close();
      store.close();
    },
  };
}
