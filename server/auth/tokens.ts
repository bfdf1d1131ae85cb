import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { TidelineError } from '../../shared/errors';

/**
 * Client tokens: JWT with HS256 and the server's secret. The subject is the
 * user id, which decides the client's scope; `roles` grants collection write
 * access (for example `staff`).
 */
export interface TokenClaims {
  sub: string;
  roles: string[];
  iat: number;
  exp: number;
}

const claimsSchema = z.object({
  sub: z.string().min(1).max(128),
  roles: z.array(z.string().max(64)).max(32).default([]),
  iat: z.number(),
  exp: z.number(),
});

const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

function base64url(input: string | Buffer): string {
  return Buffer.from(input).toString('base64url');
}

function sign(data: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(data).digest();
}

export function signToken(
  secret: string,
  claims: { sub: string; roles?: string[] },
  nowMs: number,
  ttlSeconds = 7 * 24 * 3600,
): string {
  const iat = Math.floor(nowMs / 1000);
  const payload = base64url(JSON.stringify({ sub: claims.sub, roles: claims.roles ?? [], iat, exp: iat + ttlSeconds }));
  const body = `${HEADER}.${payload}`;
  return `${body}.${sign(body, secret).toString('base64url')}`;
}

/** Verifies signature, algorithm and expiry; throws UNAUTHORIZED with the reason. */
export function verifyToken(secret: string, token: string, nowMs: number): TokenClaims {
  const parts = token.split('.');
  if (parts.length !== 3) throw new TidelineError('UNAUTHORIZED', 'malformed token');
  const [header, payload, signature] = parts as [string, string, string];
  let parsedHeader: unknown;
  let parsedPayload: unknown;
  try {
    parsedHeader = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    parsedPayload = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw new TidelineError('UNAUTHORIZED', 'malformed token');
  }
  const alg = z.object({ alg: z.literal('HS256') }).safeParse(parsedHeader);
  if (!alg.success) throw new TidelineError('UNAUTHORIZED', 'token algorithm must be HS256');
  const expected = sign(`${header}.${payload}`, secret);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new TidelineError('UNAUTHORIZED', 'bad token signature');
  }
  const claims = claimsSchema.safeParse(parsedPayload);
  if (!claims.success) throw new TidelineError('UNAUTHORIZED', 'token claims are malformed');
  if (claims.data.exp * 1000 <= nowMs) throw new TidelineError('UNAUTHORIZED', 'token expired');
  return claims.data;
}
