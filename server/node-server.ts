import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import express from 'express';
import type { Express, NextFunction, Request, Response } from 'express';
import { Server } from 'socket.io';
import { createAuth } from './auth/verifier';
import type { Auth } from './auth/verifier';
import type { ServerConfig } from './config';
import { edgeGuard } from './http/edge-guard';
import { authRoutes } from './http/routes';
import { DEFAULT_FLOOD_LIMITS, pushRatesOf } from './sync/flood-limits';
import { attachSync, DEFAULT_MAX_SESSION_BUFFER_BYTES } from './sync/socket-sync';
import type { SyncCore, SyncCoreOptions } from './sync/sync-core';

/*
 * The HTTP and Socket.IO front of a node, the same on every store: the edge
 * guard, JSON bodies, `/healthz`, `/auth`, the store's own routes, the
 * static web app and the error answer; Socket.IO's `/sync` namespace on the
 * sync core. The composition roots (app.ts on SQLite, pg-app.ts on
 * PostgreSQL) give it what differs: their routes and health check, and they
 * attach further namespaces (`/replication`) to `io`.
 */

export interface NodeFrontParts {
  config: ServerConfig;
  core: SyncCore;
  auth: Auth;
  /** `GET /healthz`: 200 with the body, or 503 when it throws or rejects (a load balancer's health check). */
  health: () => object | Promise<object>;
  /** Mounts the store-specific routes (`/admin`, `/query`, …) after `/healthz` and `/auth`, before the web app. */
  routes: (app: Express) => void;
}

export interface NodeFront {
  http: HttpServer;
  io: Server;
  /** Listens on the config's host and port; resolves with the port (0 picks one). Rejects, closing `io`, if it cannot. */
  listen(): Promise<number>;
}

export function nodeFront(parts: NodeFrontParts): NodeFront {
  const { config } = parts;
  const flood = config.floodLimits ?? DEFAULT_FLOOD_LIMITS;
  const app = express();
  app.disable('x-powered-by');
  // Before anything else: a foreign Host or Origin (DNS rebinding, a cross-site write) gets 403, every answer its headers.
  const edge = edgeGuard({
    listenHost: config.host,
    publicUrl: config.publicUrl,
    extraHosts: config.allowedHosts ?? [],
  });
  app.use(edge.middleware);
  app.use(express.json({ limit: '1mb' }));
  app.get('/healthz', (_req, res) => {
    Promise.resolve()
      .then(parts.health)
      .then(
        (body) => res.json(body),
        () => res.status(503).json({ ok: false }),
      );
  });
  app.use('/auth', authRoutes(parts.auth.devLogin));
  parts.routes(app);
  const staticDir = config.staticDir === null ? null : resolve(config.staticDir);
  if (staticDir !== null && existsSync(staticDir)) {
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
  const io = new Server(http, {
    maxHttpBufferSize: config.limits.maxMessageBytes * 2,
    serveClient: false,
    allowRequest: (req, callback) => edge.allowRequest(req, callback),
  });
  attachSync(io.of('/sync'), parts.core, parts.auth.verify, {
    maxSessionBufferBytes: config.maxSessionBufferBytes ?? DEFAULT_MAX_SESSION_BUFFER_BYTES,
    ...(config.catchUp ? { pageAckTimeoutMs: config.catchUp.pageAckTimeoutMs } : {}),
    maxConnectionsPerAddress: flood.maxConnectionsPerAddress,
    helloTimeoutMs: flood.helloTimeoutMs,
  });
  return {
    http,
    io,
    async listen() {
      try {
        await new Promise<void>((ok, fail) => {
          http.once('error', fail);
          http.listen(config.port, config.host, () => ok());
        });
      } catch (err) {
        await io.close();
        throw err;
      }
      return (http.address() as AddressInfo).port;
    },
  };
}

/** The sync core's options that come from the configuration, the same on every store. */
export type ConfiguredCoreOptions = Pick<
  SyncCoreOptions,
  | 'limits'
  | 'schedule'
  | 'pageBytes'
  | 'snapshotPageBytes'
  | 'maxConcurrentSnapshots'
  | 'pushRates'
  | 'maxConnectionsPerUser'
  | 'maxCommitMutations'
  | 'maxCommitBytes'
>;

export function coreOptionsOf(config: ServerConfig): ConfiguredCoreOptions {
  const flood = config.floodLimits ?? DEFAULT_FLOOD_LIMITS;
  return {
    limits: config.limits,
    // setImmediate: sockets are read between two flushes (a bounded group commit leaves the rest for the next).
    schedule: (fn) => setImmediate(fn),
    ...(config.catchUp
      ? {
          pageBytes: config.catchUp.pageBytes,
          snapshotPageBytes: config.catchUp.snapshotPageBytes,
          maxConcurrentSnapshots: config.catchUp.maxConcurrentSnapshots,
        }
      : {}),
    pushRates: pushRatesOf(flood),
    maxConnectionsPerUser: flood.maxConnectionsPerUser,
    maxCommitMutations: flood.maxCommitMutations,
    maxCommitBytes: flood.maxCommitBytes,
  };
}

/**
 * Client token checks: the app's identity provider (JWKS), or HS256 with
 * `secret()` (asked only then). First thing at start-up, so that auth
 * options that cannot work fail before anything is opened.
 */
export function nodeAuth(config: ServerConfig, secret: () => string): Auth {
  const auth = createAuth({
    ...config.auth,
    ...(config.auth.jwksUrl === undefined ? { secret: secret() } : {}),
    staff: config.staff,
  });
  if (auth.devLogin) {
    console.warn('WARNING: the development login is on: POST /auth/dev-login signs a token for any user name.');
    console.warn('         Never use --dev-login in production.');
  }
  return auth;
}
