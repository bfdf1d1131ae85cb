import { timingSafeEqual } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { z } from 'zod';
import { TidelineError } from '../../shared/errors';
import type { DevLogin } from '../auth/verifier';
import { CLUSTER_SECRET_HEADER } from '../cluster/cluster-node';
import type { ClusterNode } from '../cluster/cluster-node';
import type { ReplicationHub } from '../cluster/replication-hub';
import type { Store } from '../store/store';
import type { SyncCore } from '../sync/sync-core';

export interface RouteDeps {
  store: Store;
  core: SyncCore;
  adminToken: string;
  now: () => number;
  startedAt: number;
}

const userName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a user name is 1-64 of letters, digits, _ . -');

function sendError(res: Response, status: number, err: TidelineError): void {
  res.status(status).json({ error: err.toWire() });
}

/**
 * The development login: a signed token for any user name. Not for
 * production, so off (404) unless the server runs with `--dev-login`.
 */
export function authRoutes(devLogin: DevLogin | null): Router {
  const router = express.Router();
  router.post('/dev-login', (req: Request, res: Response) => {
    if (devLogin === null) {
      sendError(
        res,
        404,
        new TidelineError('NOT_FOUND', 'the development login is off (start the server with --dev-login)'),
      );
      return;
    }
    const body = z.object({ user: userName }).safeParse(req.body);
    if (!body.success) {
      sendError(res, 400, new TidelineError('BAD_REQUEST', body.error.issues[0]?.message ?? 'bad login'));
      return;
    }
    devLogin.login(body.data.user).then(
      (login) => res.json(login),
      () => sendError(res, 500, new TidelineError('INTERNAL', 'could not sign a token')),
    );
  });
  return router;
}

function bearerOk(header: string | undefined, expected: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length));
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** What the admin API needs beyond the basics: the cluster role, replication, backups. */
export interface AdminDeps extends RouteDeps {
  node: ClusterNode;
  hub: ReplicationHub;
  minSyncReplicas: number;
  backup: (path: string | undefined) => Promise<{ path: string; lsn: number }>;
}

/** The admin API: bearer admin token; 401 without it. */
export function adminRoutes(deps: AdminDeps): Router {
  const router = express.Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    if (bearerOk(req.headers.authorization, deps.adminToken)) return next();
    sendError(res, 401, new TidelineError('UNAUTHORIZED', 'admin API needs "Authorization: Bearer <admin token>"'));
  });
  router.get('/status', (_req: Request, res: Response) => {
    const meta = deps.store.meta();
    const log = deps.store.logStats();
    const replicas = deps.hub.replicas();
    const caughtUp = replicas.filter((r) => r.connected && r.live).length;
    const follower = deps.node.follower;
    res.json({
      role: deps.node.role,
      serverId: meta.serverId,
      url: deps.node.selfUrl,
      term: meta.term,
      terms: deps.store.terms(),
      headLsn: meta.headLsn,
      horizon: meta.horizon,
      logChanges: log.count,
      connectedClients: deps.core.connectedClients,
      replicas,
      minSyncReplicas: {
        required: deps.minSyncReplicas,
        caughtUp,
        met: caughtUp >= deps.minSyncReplicas,
        waitingCommits: deps.hub.waiting,
      },
      primary:
        deps.node.role === 'replica'
          ? { url: deps.node.primaryUrl, state: follower?.state ?? 'stopped', lastError: follower?.lastError ?? null }
          : null,
      rollbackFiles: deps.node.rollbackFiles(),
      uptimeMs: deps.now() - deps.startedAt,
    });
  });
  router.post('/compact', (req: Request, res: Response) => {
    const body = z.object({ upTo: z.number().int().nonnegative().optional() }).safeParse(req.body ?? {});
    if (!body.success) {
      sendError(res, 400, new TidelineError('BAD_REQUEST', body.error.issues[0]?.message ?? 'bad request'));
      return;
    }
    res.json(deps.core.compact(body.data.upTo));
  });
  router.post('/backup', (req: Request, res: Response) => {
    const body = z.object({ path: z.string().min(1).optional() }).safeParse(req.body ?? {});
    if (!body.success) {
      sendError(res, 400, new TidelineError('BAD_REQUEST', body.error.issues[0]?.message ?? 'bad request'));
      return;
    }
    deps.backup(body.data.path).then(
      (result) => res.json(result),
      (err: unknown) =>
        sendError(res, 500, err instanceof TidelineError ? err : new TidelineError('INTERNAL', 'backup failed')),
    );
  });
  router.post('/promote', (_req: Request, res: Response) => {
    if (deps.node.role === 'primary') {
      sendError(res, 409, new TidelineError('BAD_REQUEST', 'this node is already the primary'));
      return;
    }
    res.json(deps.node.promote());
  });
  return router;
}

/** Cluster-internal: peers ask each other for their role and term, with the cluster secret. */
export function clusterRoutes(node: ClusterNode, clusterSecret: string): Router {
  const router = express.Router();
  router.get('/info', (req: Request, res: Response) => {
    const given = req.headers[CLUSTER_SECRET_HEADER];
    if (typeof given !== 'string' || !bearerOk(`Bearer ${given}`, clusterSecret)) {
      sendError(res, 401, new TidelineError('UNAUTHORIZED', 'wrong or missing cluster secret'));
      return;
    }
    res.json(node.info());
  });
  return router;
}
