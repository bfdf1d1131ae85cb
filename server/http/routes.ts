import { timingSafeEqual } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { z } from 'zod';
import { TidelineError } from '../../shared/errors';
import { signToken } from '../auth/tokens';
import type { Store } from '../store/store';
import type { SyncCore } from '../sync/sync-core';

export interface RouteDeps {
  store: Store;
  core: SyncCore;
  secret: string;
  adminToken: string;
  staff: readonly string[];
  now: () => number;
  startedAt: number;
}

const userName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a user name is 1-64 of letters, digits, _ . -');

function sendError(res: Response, status: number, err: TidelineError): void {
  res.status(status).json({ error: err.toWire() });
}

/** The development login: a signed token for any user name. Not for production. */
export function authRoutes(deps: RouteDeps): Router {
  const router = express.Router();
  router.post('/dev-login', (req: Request, res: Response) => {
    const body = z.object({ user: userName }).safeParse(req.body);
    if (!body.success) {
      sendError(res, 400, new TidelineError('BAD_REQUEST', body.error.issues[0]?.message ?? 'bad login'));
      return;
    }
    const roles = deps.staff.includes(body.data.user) ? ['staff'] : [];
    const token = signToken(deps.secret, { sub: body.data.user, roles }, deps.now());
    res.json({ token, userId: body.data.user, roles });
  });
  return router;
}

function bearerOk(header: string | undefined, expected: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length));
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** The admin API: bearer admin token; 401 without it. */
export function adminRoutes(deps: RouteDeps): Router {
  const router = express.Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    if (bearerOk(req.headers.authorization, deps.adminToken)) return next();
    sendError(res, 401, new TidelineError('UNAUTHORIZED', 'admin API needs "Authorization: Bearer <admin token>"'));
  });
  router.get('/status', (_req: Request, res: Response) => {
    const meta = deps.store.meta();
    const log = deps.store.logStats();
    res.json({
      role: 'primary',
      serverId: meta.serverId,
      term: meta.term,
      headLsn: meta.headLsn,
      horizon: meta.horizon,
      logChanges: log.count,
      connectedClients: deps.core.connectedClients,
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
  return router;
}
