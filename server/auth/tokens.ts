import { createHmac } from 'node:crypto';

/**
 * Signs an HS256 client token synchronously, for tests and benchmarks that
 * need a token for a server running with a shared secret. The server itself
 * checks tokens with `jose` (verifier.ts) and signs dev-login tokens there.
 */
const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

function base64url(input: string | Buffer): string {
  return Buffer.from(input).toString('base64url');
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
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
