import { createRemoteJWKSet, jwtVerify, SignJWT } from 'jose';
import type { JWTVerifyGetKey } from 'jose';
import { TidelineError } from '../../shared/errors';
import type { Principal } from '../sync/sync-core';
import { principalOf } from './claims';
import { refusal } from './refusal';

/**
 * How the server checks client tokens: JWTs from the app's own identity
 * provider, or signed with a shared secret. Exactly one of `secret` and
 * `jwksUrl`.
 */
export interface AuthOptions {
  /** HS256: the secret tokens are signed with (the CLI's `TIDELINE_SECRET` or `<data>/secret.key`). */
  secret?: string;
  /** Or the identity provider's JSON Web Key Set (RS256, ES256, EdDSA keys), fetched and cached. */
  jwksUrl?: string;
  /** The `iss` a token must carry, when set. */
  issuer?: string | string[];
  /** The `aud` a token must carry, when set. */
  audience?: string | string[];
  /** The claim that names the user (default `sub`); a dotted name reads a nested claim. */
  userClaim?: string;
  /** The claim that holds the roles (default `roles`): an array of strings or a space-separated string. */
  rolesClaim?: string;
  /** Algorithms accepted from the JWKS (default RS256, ES256, EdDSA). A secret accepts HS256 only. */
  algorithms?: string[];
  /** Clock skew allowed for `exp` and `nbf`, in seconds (default 0). */
  clockToleranceSeconds?: number;
  /** Serve `POST /auth/dev-login`, which signs a token for any user name. Needs `secret`. Never in production. */
  devLogin?: boolean;
  /** User names the dev login gives the `staff` role (default `['staff']`). */
  staff?: readonly string[];
}

/** A verified token's principal, and when the token expires (ms since the epoch): its session ends then. */
export interface VerifiedPrincipal extends Principal {
  expiresAt: number;
}

export interface DevLogin {
  /** Signs a token for `user` (with the staff role if listed), valid for a week. */
  login(user: string): Promise<{ token: string; userId: string; roles: string[] }>;
}

export interface Auth {
  /** Checks a client token; rejects with UNAUTHORIZED (or INTERNAL, retryable, when the keys cannot be fetched). */
  readonly verify: (token: string) => Promise<VerifiedPrincipal>;
  /** The development login, or null when it is off. */
  readonly devLogin: DevLogin | null;
}

const JWKS_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];
const DEV_LOGIN_TTL_SECONDS = 7 * 24 * 3600;
/**
 * Below the clients' hello timeout. jose caches the key set (10 minutes) and fetches it again for a token
 * naming an unknown key at most once per 30 s cooldown, so a flood of made-up kids costs one fetch.
 */
const JWKS_FETCH_TIMEOUT_MS = 3000;

function invalid(message: string): TidelineError {
  return new TidelineError('BAD_REQUEST', `auth options: ${message}`);
}

/** Builds the token verifier (and the dev login, when on); throws BAD_REQUEST for options that cannot work. */
export function createAuth(options: AuthOptions, now: () => number = Date.now): Auth {
  const { secret, jwksUrl } = options;
  if ((secret === undefined) === (jwksUrl === undefined)) throw invalid('give exactly one of secret and jwksUrl');
  if (secret !== undefined && secret.length === 0) throw invalid('the secret is empty');
  if (options.devLogin && secret === undefined) {
    throw invalid('the dev login signs tokens with the secret, so it cannot be on with a JWKS URL');
  }
  const userClaim = options.userClaim ?? 'sub';
  const rolesClaim = options.rolesClaim ?? 'roles';
  const issuer = options.issuer;
  const audience = options.audience;
  for (const [name, value] of [
    ['userClaim', userClaim],
    ['rolesClaim', rolesClaim],
  ] as const) {
    if (value.length === 0) throw invalid(`${name} is empty`);
  }

  const tolerance = options.clockToleranceSeconds ?? 0;
  if (!Number.isFinite(tolerance) || tolerance < 0) throw invalid('clockToleranceSeconds must be 0 or more');

  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[];
  if (jwksUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(jwksUrl);
    } catch {
      throw invalid(`jwksUrl '${jwksUrl}' is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(`jwksUrl '${jwksUrl}' is not http(s)`);
    key = createRemoteJWKSet(url, { timeoutDuration: JWKS_FETCH_TIMEOUT_MS });
    algorithms = options.algorithms ?? JWKS_ALGORITHMS;
    if (algorithms.some((alg) => alg.startsWith('HS') || alg === 'none')) {
      throw invalid('a JWKS takes asymmetric algorithms only (RS*, PS*, ES*, EdDSA)');
    }
  } else {
    key = new TextEncoder().encode(secret);
    algorithms = ['HS256'];
  }
  const verifyOptions = {
    algorithms,
    requiredClaims: ['exp'],
    clockTolerance: tolerance,
    ...(issuer === undefined ? {} : { issuer }),
    ...(audience === undefined ? {} : { audience }),
  };
  const toleranceMs = tolerance * 1000;

  const verify = async (token: string): Promise<VerifiedPrincipal> => {
    try {
      const opts = { ...verifyOptions, currentDate: new Date(now()) };
      // Two calls, not one on a union: jose's overloads take a key or a key resolver.
      const { payload } =
        key instanceof Uint8Array ? await jwtVerify(token, key, opts) : await jwtVerify(token, key, opts);
      const principal = principalOf(payload, userClaim, rolesClaim);
      // requiredClaims made jose check that exp is a number.
      return { ...principal, expiresAt: (payload.exp ?? 0) * 1000 + toleranceMs };
    } catch (err) {
      throw refusal(err, jwksUrl ?? null);
    }
  };

  const staff = options.staff ?? ['staff'];
  const devLogin: DevLogin | null =
    options.devLogin && secret !== undefined
      ? {
          async login(user) {
            const roles = staff.includes(user) ? ['staff'] : [];
            const iat = Math.floor(now() / 1000);
            const firstOf = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
            // The token carries the user and roles under the configured claim names, so it verifies like any other.
            const jwt = new SignJWT({ [userClaim]: user, [rolesClaim]: roles })
              .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
              .setIssuedAt(iat)
              .setExpirationTime(iat + DEV_LOGIN_TTL_SECONDS);
            const iss = firstOf(issuer);
            const aud = firstOf(audience);
            if (iss !== undefined) jwt.setIssuer(iss);
            if (aud !== undefined) jwt.setAudience(aud);
            return { token: await jwt.sign(new TextEncoder().encode(secret)), userId: user, roles };
          },
        }
      : null;

  return { verify, devLogin };
}
