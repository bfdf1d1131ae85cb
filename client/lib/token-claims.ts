import { z } from 'zod';

const claimsSchema = z.object({ sub: z.string(), roles: z.array(z.string()).default([]) });

/**
 * Reads who a token is for, without checking its signature: the client uses
 * it only to run mutators optimistically as that user; the server verifies.
 */
export function tokenClaims(token: string): { userId: string; roles: string[] } {
  const payload = token.split('.')[1];
  if (!payload) throw new Error('malformed token');
  const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
  const claims = claimsSchema.parse(JSON.parse(json));
  return { userId: claims.sub, roles: claims.roles };
}
