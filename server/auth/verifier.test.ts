import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidelineError } from '../../shared/errors';
import { IDP_ALGORITHMS, startTestIdp } from '../../test/support/test-idp';
import type { TestIdp } from '../../test/support/test-idp';
import { signToken } from './tokens';
import { createAuth } from './verifier';
import type { Auth, AuthOptions } from './verifier';

/** The error a verification rejected with; fails when it verified. */
async function refused(auth: Auth, token: string): Promise<TidelineError> {
  const outcome = await auth.verify(token).then(
    (principal) => new Error(`verified as ${JSON.stringify(principal)}`),
    (err: unknown) => err,
  );
  if (!(outcome instanceof TidelineError)) throw outcome;
  return outcome;
}

async function unauthorized(auth: Auth, token: string): Promise<string> {
  const err = await refused(auth, token);
  expect(err.code).toBe('UNAUTHORIZED');
  expect(err.retryable).toBe(false);
  return err.message;
}

describe('createAuth with a JWKS URL', () => {
  let idp: TestIdp;
  let auth: Auth;
  const now = (): number => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    idp = await startTestIdp();
    auth = createAuth({ jwksUrl: idp.jwksUrl, issuer: idp.issuer, audience: idp.audience });
  });
  afterAll(async () => {
    await idp.close();
  });

  it.each(IDP_ALGORITHMS)('accepts a %s token: the user, the roles and when it expires', async (alg) => {
    const exp = now() + 600;
    const token = await idp.sign(alg, { sub: `user-${alg}`, roles: ['staff'], exp });
    expect(await auth.verify(token)).toEqual({ userId: `user-${alg}`, roles: ['staff'], expiresAt: exp * 1000 });
  });

  it('fetches the key set once for many tokens', async () => {
    const before = idp.fetches();
    for (const alg of IDP_ALGORITHMS) await auth.verify(await idp.sign(alg, { sub: 'again' }));
    expect(idp.fetches()).toBe(before);
  });

  it('refuses an expired token', async () => {
    const token = await idp.sign('ES256', { sub: 'late', iat: now() - 120, exp: now() - 60 });
    expect(await unauthorized(auth, token)).toBe('token expired');
  });

  it('refuses a token that is not yet valid', async () => {
    const token = await idp.sign('ES256', { sub: 'early', nbf: now() + 600 });
    expect(await unauthorized(auth, token)).toBe('token is not yet valid');
  });

  it('refuses the wrong issuer, a missing one, and the wrong audience', async () => {
    expect(await unauthorized(auth, await idp.sign('RS256', { sub: 'u', iss: 'https://evil.example/' }))).toMatch(
      /wrong 'iss'/,
    );
    expect(await unauthorized(auth, await idp.sign('RS256', { sub: 'u', iss: undefined }))).toMatch(/no 'iss'/);
    expect(await unauthorized(auth, await idp.sign('RS256', { sub: 'u', aud: 'another-app' }))).toMatch(/wrong 'aud'/);
    expect(await unauthorized(auth, await idp.sign('RS256', { sub: 'u', aud: undefined }))).toMatch(/no 'aud'/);
  });

  it('refuses a token without exp: it would never end', async () => {
    expect(await unauthorized(auth, await idp.sign('EdDSA', { sub: 'u', exp: undefined }))).toMatch(/no 'exp'/);
  });

  it.each(IDP_ALGORITHMS)('refuses a %s token signed with a key the set does not hold', async (alg) => {
    const unknownKid = await idp.sign(alg, { sub: 'mallory' }, { stranger: true });
    expect(await unauthorized(auth, unknownKid)).toBe('no signing key matches the token');
    // The published key's kid, another key's signature.
    const borrowedKid = await idp.sign(alg, { sub: 'mallory' }, { stranger: true, kid: `idp-${alg}` });
    expect(await unauthorized(auth, borrowedKid)).toBe('bad token signature');
  });

  it('refuses alg none, and an HS256 token (no shared secret with a JWKS)', async () => {
    const none = new UnsecuredJWT({ sub: 'mallory', iss: idp.issuer, aud: idp.audience })
      .setExpirationTime('1h')
      .encode();
    expect(await unauthorized(auth, none)).toBe('token algorithm is not accepted');
    expect(await unauthorized(auth, signToken('guess', { sub: 'mallory' }, Date.now()))).toBe(
      'token algorithm is not accepted',
    );
  });

  it('reads the user and roles from configured claims, nested or namespaced', async () => {
    const keycloak = createAuth({ jwksUrl: idp.jwksUrl, userClaim: 'email', rolesClaim: 'realm_access.roles' });
    const token = await idp.sign('RS256', {
      sub: 'id-1',
      email: 'ann@example.com',
      realm_access: { roles: ['staff'] },
    });
    expect(await keycloak.verify(token)).toMatchObject({ userId: 'ann@example.com', roles: ['staff'] });
    const auth0 = createAuth({ jwksUrl: idp.jwksUrl, rolesClaim: 'https://example.com/roles' });
    const namespaced = await idp.sign('ES256', { sub: 'id-2', 'https://example.com/roles': ['a', 'b'] });
    expect(await auth0.verify(namespaced)).toMatchObject({ userId: 'id-2', roles: ['a', 'b'] });
    // No roles claim: no roles. A user claim that is missing or not a string: refused.
    expect(await keycloak.verify(await idp.sign('RS256', { email: 'bob@example.com' }))).toMatchObject({ roles: [] });
    expect(await unauthorized(keycloak, await idp.sign('RS256', { sub: 'id-3' }))).toMatch(/'email' must be a user id/);
    expect(await unauthorized(keycloak, await idp.sign('RS256', { email: 7 }))).toMatch(/'email' must be a user id/);
  });

  it('allows the configured clock skew, and ends the session that much later', async () => {
    const lenient = createAuth({ jwksUrl: idp.jwksUrl, clockToleranceSeconds: 30 });
    const exp = now() - 10;
    expect(await lenient.verify(await idp.sign('ES256', { sub: 'skewed', iat: exp - 60, exp }))).toMatchObject({
      expiresAt: exp * 1000 + 30_000,
    });
  });
});

describe('createAuth when the key set cannot be had', () => {
  it('answers INTERNAL, retryable (the token may be fine), for a refused connection and a bad answer', async () => {
    const idp = await startTestIdp();
    const token = await idp.sign('RS256', { sub: 'u' });
    const { jwksUrl } = idp;
    await idp.close();
    const down = await refused(createAuth({ jwksUrl }), token);
    expect([down.code, down.retryable, down.message]).toEqual([
      'INTERNAL',
      true,
      'cannot get the signing keys to check the token',
    ]);
    expect(down.hint).toContain(jwksUrl);

    const broken = createServer((_req, res) => res.writeHead(500).end('oops'));
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(broken.address() as AddressInfo).port}/jwks`;
      expect(await refused(createAuth({ jwksUrl: url }), token)).toMatchObject({ code: 'INTERNAL', retryable: true });
    } finally {
      broken.close();
    }
  });
});

describe('createAuth options', () => {
  it('refuses options that cannot work', () => {
    const bad: AuthOptions[] = [
      {},
      { secret: 's', jwksUrl: 'https://idp.example/jwks' },
      { secret: '' },
      { jwksUrl: 'not a url' },
      { jwksUrl: 'file:///etc/keys' },
      { jwksUrl: 'https://idp.example/jwks', devLogin: true },
      { jwksUrl: 'https://idp.example/jwks', algorithms: ['HS256'] },
      { jwksUrl: 'https://idp.example/jwks', algorithms: ['none'] },
      { secret: 's', userClaim: '' },
      { secret: 's', clockToleranceSeconds: -1 },
    ];
    for (const options of bad) {
      expect(() => createAuth(options), JSON.stringify(options)).toThrow(TidelineError);
    }
  });

  it('has no dev login unless asked for', () => {
    expect(createAuth({ secret: 's' }).devLogin).toBeNull();
    expect(createAuth({ secret: 's', devLogin: false }).devLogin).toBeNull();
    expect(createAuth({ secret: 's', devLogin: true }).devLogin).not.toBeNull();
  });

  it('signs dev-login tokens that its own checks accept, under the configured claims, issuer and audience', async () => {
    const auth = createAuth({
      secret: 'dev-secret',
      devLogin: true,
      staff: ['boss'],
      issuer: 'https://dev.example/',
      audience: 'demo',
      userClaim: 'email',
      rolesClaim: 'groups',
    });
    const login = await auth.devLogin?.login('boss');
    expect(login).toMatchObject({ userId: 'boss', roles: ['staff'] });
    expect(await auth.verify(login?.token ?? '')).toMatchObject({ userId: 'boss', roles: ['staff'] });
    const shopper = await auth.devLogin?.login('ann');
    expect(await auth.verify(shopper?.token ?? '')).toMatchObject({ userId: 'ann', roles: [] });
    // Another server's audience does not take it.
    const other = createAuth({ secret: 'dev-secret', audience: 'other', userClaim: 'email', rolesClaim: 'groups' });
    expect(await unauthorized(other, login?.token ?? '')).toMatch(/wrong 'aud'/);
  });
});
