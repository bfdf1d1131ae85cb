import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { TidelineError } from '../../shared/errors';
import type { Principal } from '../sync/sync-core';

/**
 * Checks `Authorization: Bearer <client token>` before the routes behind it
 * run, so that their user lookup can stay synchronous. No header is an
 * anonymous request (public data only); a bad token answers 401 with the
 * reason, a key set that cannot be fetched 503.
 */
export function bearerUsers(verify: (token: string) => Promise<Principal>): {
  middleware: RequestHandler;
  userOf: (req: Request) => Principal | null;
} {
  const users = new WeakMap<Request, Principal>();
  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    const header = req.headers.authorization;
    if (header === undefined) return next();
    if (!header.startsWith('Bearer ')) {
      res.status(401).json({ error: new TidelineError('UNAUTHORIZED', 'expected "Bearer <client token>"').toWire() });
      return;
    }
    verify(header.slice('Bearer '.length)).then(
      (principal) => {
        users.set(req, { userId: principal.userId, roles: principal.roles });
        next();
      },
      (err: unknown) => {
        const e = err instanceof TidelineError ? err : new TidelineError('INTERNAL', 'token check failed');
        res.status(e.code === 'UNAUTHORIZED' ? 401 : 503).json({ error: e.toWire() });
      },
    );
  };
  return { middleware, userOf: (req) => users.get(req) ?? null };
}
