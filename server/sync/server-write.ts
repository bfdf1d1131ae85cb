import { createHash, randomUUID } from 'node:crypto';
import { TidelineError } from '../../shared/errors';
import type { WireErrorShape } from '../../shared/errors';
import { isJsonValue, jsonByteLength } from '../../shared/json';
import type { JsonValue } from '../../shared/json';
import type { RunContext } from '../../shared/mutators/run-mutation';
import { SERVER_ORIGIN_PREFIX } from '../store/store';

/** A user a server-side write runs as: the same access checks as a client of that user. */
export interface UserPrincipal {
  userId: string;
  roles: readonly string[];
}

/**
 * The system principal: backend code acting as itself. It may read and write
 * every collection (whatever its `write` access); document schemas and rules
 * still apply, and an owner-only document must name its owner.
 */
export const SYSTEM: { readonly system: true } = Object.freeze({ system: true as const });

export type ServerPrincipal = UserPrincipal | typeof SYSTEM;

/** The user id mutators see for the system principal; not a valid dev-login name, so no user has it by accident. */
export const SYSTEM_USER_ID = '~system';

export interface ServerWriteOptions {
  /**
   * Names the request: a write retried with the same key commits once and
   * answers `duplicate` (with the first attempt's error when it was
   * rejected). 1-255 printable ASCII characters. Remembered for the
   * retention period (24 hours by default). Without a key, the write gets a
   * random one: a retry commits again.
   */
  idempotencyKey?: string;
}

/** What a server-side write came to: the outcomes of a push. */
export type ServerWriteResult =
  | { status: 'applied'; lsn: number }
  | { status: 'duplicate'; lsn?: number; error?: WireErrorShape }
  | { status: 'rejected'; error: WireErrorShape };

/** A validated server write, ready for the group commit. */
export interface ServerWrite {
  principal: ServerPrincipal;
  name: string;
  args: JsonValue;
  /**
   * `SERVER_ORIGIN_PREFIX` + the key's hash. Every server write has an
   * origin, even without a key, so its changes are one mutation in the log:
   * a catch-up page never ends inside it (`readLog` groups by origin).
   */
  origin: string;
}

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
const KEY_PATTERN = /^[\x21-\x7e]+$/;

export const isSystem = (p: ServerPrincipal): p is typeof SYSTEM => 'system' in p && p.system === true;

/**
 * The origin (client id) of a keyed server write. Hashed so that any key up
 * to 255 characters fits the 64-character client ids of the log and its
 * replication, and the prefix keeps it apart from every client id.
 */
export function serverOriginOf(key: string): string {
  return SERVER_ORIGIN_PREFIX + createHash('sha256').update(key).digest('base64url');
}

/** Checks a server write's input; throws BAD_REQUEST or TOO_LARGE. */
export function checkServerWrite(
  principal: ServerPrincipal,
  name: string,
  args: unknown,
  options: ServerWriteOptions,
  maxBytes: number,
): ServerWrite {
  if (typeof name !== 'string' || name.length === 0 || name.length > 64) {
    throw new TidelineError('BAD_REQUEST', 'a mutator name is 1-64 characters');
  }
  if (!isJsonValue(args)) throw new TidelineError('BAD_REQUEST', `the arguments of '${name}' are not JSON`);
  const size = jsonByteLength(args);
  if (size > maxBytes) {
    throw new TidelineError('TOO_LARGE', `the arguments of '${name}' are ${size} bytes; the limit is ${maxBytes}`);
  }
  if (!isSystem(principal)) {
    const { userId, roles } = principal;
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > 256 || userId === SYSTEM_USER_ID) {
      throw new TidelineError('BAD_REQUEST', 'a user principal needs a userId of 1-256 characters');
    }
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) {
      throw new TidelineError('BAD_REQUEST', 'a user principal needs roles: string[]');
    }
  }
  const key = options.idempotencyKey;
  if (key !== undefined && (key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !KEY_PATTERN.test(key))) {
    throw new TidelineError(
      'BAD_REQUEST',
      `an idempotency key is 1-${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, no spaces`,
    );
  }
  return { principal, name, args, origin: serverOriginOf(key ?? randomUUID()) };
}

/** The context a server write's mutator runs with. */
export function contextOf(principal: ServerPrincipal): RunContext {
  if (isSystem(principal)) return { userId: SYSTEM_USER_ID, roles: [], side: 'server', system: true };
  return { userId: principal.userId, roles: [...principal.roles], side: 'server' };
}
