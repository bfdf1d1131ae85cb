import { timingSafeEqual } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { z } from 'zod';
import { TidelineError } from '../../shared/errors';
import type { WireErrorShape } from '../../shared/errors';
import { jsonValueSchema } from '../../shared/json';
import type { DevLogin } from '../auth/verifier';
import { CLUSTER_SECRET_HEADER } from '../cluster/cluster-node';
import type { ClusterNode } from '../cluster/cluster-node';
import type { ReplicationHub } from '../cluster/replication-hub';
import type { AsyncStore } from '../store/async-store';
import { SYSTEM } from '../sync/server-write';
import type { SyncCore } from '../sync/sync-core';

/** What the status reads of the store: the SQLite store through `asyncStoreOf`, or a PostgreSQL node's `PgStore`. */
export type StatusStore = Pick<AsyncStore, 'meta' | 'logStats' | 'clusterId' | 'terms'>;

/** What the admin API asks of the sync core. */
export type AdminCore = Pick<SyncCore, 'compact' | 'submit' | 'connectedClients'>;

export interface RouteDeps {
  store: StatusStore;
  core: AdminCore;
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

/** What the admin API needs beyond the basics: the cluster role, replication, backups (a SQLite node). */
export interface AdminDeps extends RouteDeps {
  /** This node's name (`--node-id`, else host-port once it listens). */
  nodeId: () => string;
  node: ClusterNode;
  hub: ReplicationHub;
  minSyncReplicas: number;
  backup: (path: string | undefined) => Promise<{ path: string; lsn: number }>;
}

/** The admin API of a SQLite node (a primary or a replica): `adminApi` with its status, backups and promotion. */
export function adminRoutes(deps: AdminDeps): Router {
  return adminApi({
    adminToken: deps.adminToken,
    core: deps.core,
    status: () => sqliteNodeStatus(deps),
    notPrimary: () => (deps.node.role === 'primary' ? null : { primary: deps.node.primaryUrl }),
    backup: deps.backup,
    promote: {
      isPrimary: () => deps.node.role === 'primary',
      promote: () => deps.node.promote(),
    },
  });
}

/** `GET /admin/status` of a SQLite node (README, "Replication and failover", lists the fields). */
async function sqliteNodeStatus(deps: AdminDeps): Promise<object> {
  const [meta, log, clusterId, terms] = await Promise.all([
    deps.store.meta(),
    deps.store.logStats(),
    deps.store.clusterId(),
    deps.store.terms(),
  ]);
  const replicas = deps.hub.replicas();
  const caughtUp = replicas.filter((r) => r.connected && r.live).length;
  const follower = deps.node.follower;
  return {
    store: 'sqlite',
    nodeId: deps.nodeId(),
    role: deps.node.role,
    serverId: meta.serverId,
    clusterId,
    url: deps.node.selfUrl,
    term: meta.term,
    terms,
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
        ? {
            url: deps.node.primaryUrl,
            state: follower?.state ?? 'stopped',
            lastError: follower?.lastError ?? null,
            // Set when the primary refused this node's data: what the operator should do.
            action: follower?.advice ?? null,
          }
        : null,
    rollbackFiles: deps.node.rollbackFiles(),
    uptimeMs: deps.now() - deps.startedAt,
  };
}

/** What `adminApi` serves; the store-specific parts are functions of the composition root. */
export interface AdminApiDeps {
  adminToken: string;
  core: AdminCore;
  /** The body of `GET /admin/status`. */
  status: () => Promise<object>;
  /** Null when this node takes writes; else where the primary is (a replica answers NOT_PRIMARY). */
  notPrimary: () => { primary: string | null } | null;
  /** `POST /admin/backup`; absent on a node whose backups are its database's (PostgreSQL). */
  backup?: (path: string | undefined) => Promise<{ path: string; lsn: number }>;
  /** `POST /admin/promote`; absent where every node takes writes (PostgreSQL). */
  promote?: { isPrimary: () => boolean; promote: () => object };
  /** Why `backup` or `promote` is absent, for the 404 that answers them. */
  missing?: { backup: string; promote: string };
}

/** The admin API: bearer admin token; 401 without it. */
export function adminApi(deps: AdminApiDeps): Router {
  const router = express.Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    if (bearerOk(req.headers.authorization, deps.adminToken)) return next();
    sendError(res, 401, new TidelineError('UNAUTHORIZED', 'admin API needs "Authorization: Bearer <admin token>"'));
  });
  router.get('/status', (_req: Request, res: Response) => {
    deps.status().then(
      (status) => res.json(status),
      (err: unknown) => {
        const e = internal(err, 'could not read the status');
        sendError(res, failureStatus(e), e);
      },
    );
  });
  router.post('/compact', (req: Request, res: Response) => {
    const body = z.object({ upTo: z.number().int().nonnegative().optional() }).safeParse(req.body ?? {});
    if (!body.success) {
      sendError(res, 400, new TidelineError('BAD_REQUEST', body.error.issues[0]?.message ?? 'bad request'));
      return;
    }
    deps.core.compact(body.data.upTo).then(
      (result) => res.json(result),
      (err: unknown) => {
        const e = internal(err, 'compaction failed');
        sendError(res, failureStatus(e), e);
      },
    );
  });
  router.post('/backup', (req: Request, res: Response) => {
    const backup = deps.backup;
    if (backup === undefined) {
      sendError(res, 404, new TidelineError('NOT_FOUND', deps.missing?.backup ?? 'this node takes no backups'));
      return;
    }
    const body = z.strictObject({ path: z.string().min(1).max(1024).optional() }).safeParse(req.body ?? {});
    if (!body.success) {
      sendError(res, 400, new TidelineError('BAD_REQUEST', body.error.issues[0]?.message ?? 'bad request'));
      return;
    }
    backup(body.data.path).then(
      (result) => res.json(result),
      (err: unknown) => {
        const e = err instanceof TidelineError ? err : new TidelineError('INTERNAL', 'backup failed');
        // A refused path (outside the backups directory, an existing file) is the caller's to fix.
        sendError(res, e.code === 'BAD_REQUEST' ? 400 : 500, e);
      },
    );
  });
  router.post('/mutate', (req: Request, res: Response) => {
    void adminMutate(deps, req, res);
  });
  router.post('/promote', (_req: Request, res: Response) => {
    const promote = deps.promote;
    if (promote === undefined) {
      sendError(res, 404, new TidelineError('NOT_FOUND', deps.missing?.promote ?? 'this node cannot be promoted'));
      return;
    }
    if (promote.isPrimary()) {
      sendError(res, 409, new TidelineError('BAD_REQUEST', 'this node is already the primary'));
      return;
    }
    res.json(promote.promote());
  });
  return router;
}

function internal(err: unknown, what: string): TidelineError {
  return err instanceof TidelineError ? err : new TidelineError('INTERNAL', what, { cause: err });
}

/** The HTTP status of a failed admin call that is not a rejection. */
function failureStatus(err: TidelineError): number {
  if (err.code === 'BAD_REQUEST') return 400;
  if (err.code === 'NOT_PRIMARY' || err.code === 'NOT_READY') return 503;
  return 500;
}

const mutateBodySchema = z.strictObject({
  name: z.string().min(1).max(64),
  args: jsonValueSchema,
  /** Who the write runs as; the system principal when left out (the admin token already has every power). */
  as: z
    .union([
      z.literal('system'),
      z.strictObject({ userId: z.string().min(1).max(256), roles: z.array(z.string().min(1).max(64)).max(64) }),
    ])
    .optional(),
});

/** What a rejection answers over HTTP: the principal may not (403), the data says no (409), the request is wrong (422). */
function rejectionStatus(error: WireErrorShape): number {
  if (error.code === 'FORBIDDEN') return 403;
  if (error.code === 'REJECTED' || error.code === 'NOT_FOUND' || error.code === 'QUOTA_EXCEEDED') return 409;
  return 422;
}

/**
 * `POST /admin/mutate {name, args, as?}` with an `Idempotency-Key` header: a
 * server-side write through the sync core's group commit. The key is required:
 * an HTTP call can fail after the commit (a timeout, a dropped connection),
 * and only a key makes the retry safe. A retry answers `duplicate` with the
 * HTTP status of the first outcome, so a retry loop that checks the status
 * alone never takes a rejection for a success.
 */
async function adminMutate(deps: AdminApiDeps, req: Request, res: Response): Promise<void> {
  const notPrimary = (): void => {
    const primary = deps.notPrimary()?.primary ?? null;
    res.status(503).json({
      error: {
        ...new TidelineError(
          'NOT_PRIMARY',
          primary ? `this node is a replica; the primary is ${primary}` : 'this node is not the primary',
          { retryable: true },
        ).toWire(),
        ...(primary ? { primary } : {}),
      },
    });
  };
  if (deps.notPrimary() !== null) return notPrimary();
  const body = mutateBodySchema.safeParse(req.body);
  if (!body.success) {
    const issue = body.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    return sendError(res, 400, new TidelineError('BAD_REQUEST', `${where}${issue?.message ?? 'bad request'}`));
  }
  const key = req.get('idempotency-key');
  if (key === undefined || key.length === 0) {
    return sendError(
      res,
      400,
      new TidelineError('BAD_REQUEST', 'POST /admin/mutate needs an Idempotency-Key header', {
        hint: 'send a fresh random key (a UUID) per write, and the same key when you retry it',
      }),
    );
  }
  const { name, args, as } = body.data;
  const principal = as === undefined || as === 'system' ? SYSTEM : as;
  try {
    const result = await deps.core.submit(principal, name, args, { idempotencyKey: key });
    const status = result.status === 'applied' || result.error === undefined ? 200 : rejectionStatus(result.error);
    res.status(status).json(result);
  } catch (err) {
    const e = err instanceof TidelineError ? err : new TidelineError('INTERNAL', 'the write failed');
    if (e.code === 'NOT_PRIMARY') return notPrimary();
    const status = e.code === 'BAD_REQUEST' ? 400 : e.code === 'TOO_LARGE' ? 413 : 500;
    sendError(res, status, e);
  }
}

/**
 * Reads on a replica whose primary refused its data (another cluster's
 * backup, a diverged history): 503 NOT_READY, retryable (another node may
 * answer), rather than that data as if it were this cluster's.
 */
export function refusedReplicaGuard(node: ClusterNode): RequestHandler {
  return (_req: Request, res: Response, next: NextFunction) => {
    const refused = readsRefused(node);
    if (!refused) return next();
    res.setHeader('Retry-After', '5');
    sendError(res, 503, refused);
  };
}

/** Why this node serves no reads (its primary refused its data), or null when it serves them. */
export function readsRefused(node: ClusterNode): TidelineError | null {
  const follower = node.follower;
  if (node.role !== 'replica' || follower?.state !== 'refused') return null;
  const why = follower.lastError ? `${follower.lastError.code}: ${follower.lastError.message}` : 'refused';
  return new TidelineError('NOT_READY', `this replica serves no reads: its primary refused its data (${why})`, {
    retryable: true,
    ...(follower.advice ? { hint: follower.advice } : {}),
  });
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
