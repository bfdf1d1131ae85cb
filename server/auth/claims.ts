import { z } from 'zod';
import { TidelineError } from '../../shared/errors';
import type { Principal } from '../sync/sync-core';

/** Bounds on what a token may claim: a hostile token cannot make a session hold much. */
const userIdSchema = z.string().min(1).max(128);
const roleSchema = z.string().min(1).max(128);
const MAX_ROLES = 64;

/**
 * Reads a claim by name. A name the payload has as a key wins (Auth0's
 * namespaced claims such as `https://example.com/roles` contain dots); else a
 * dotted name is a path into nested objects (Keycloak's `realm_access.roles`).
 */
export function readClaim(payload: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  let value: unknown = payload;
  for (const key of name.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, key)) {
      return undefined;
    }
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/**
 * The principal a verified token names: the user from `userClaim` (a string),
 * the roles from `rolesClaim` (an array of strings, or one space-separated
 * string as in OAuth's `scope`; absent means none). Throws UNAUTHORIZED.
 */
export function principalOf(payload: Record<string, unknown>, userClaim: string, rolesClaim: string): Principal {
  const userId = userIdSchema.safeParse(readClaim(payload, userClaim));
  if (!userId.success) {
    throw new TidelineError('UNAUTHORIZED', `token claims are malformed: '${userClaim}' must be a user id string`);
  }
  const raw = readClaim(payload, rolesClaim);
  const list = raw === undefined ? [] : typeof raw === 'string' ? raw.split(' ').filter((r) => r.length > 0) : raw;
  const roles = z.array(roleSchema).max(MAX_ROLES).safeParse(list);
  if (!roles.success) {
    throw new TidelineError(
      'UNAUTHORIZED',
      `token claims are malformed: '${rolesClaim}' must be up to ${MAX_ROLES} role strings`,
    );
  }
  return { userId: userId.data, roles: roles.data };
}
