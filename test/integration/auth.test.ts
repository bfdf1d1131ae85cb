import { UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helloAckSchema } from '../../shared/protocol/hello';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { IDP_ALGORITHMS, startTestIdp } from '../support/test-idp';
import type { TestIdp } from '../support/test-idp';
import { waitFor } from '../support/wait';

/** Client tokens from an identity provider's JWKS, the session's end at `exp`, and the dev login flag. */
describe('auth with a JWKS', () => {
  let idp: TestIdp;
  let server: ServerProcess;
  const raws: RawClient[] = [];
  let clientCount = 0;
  const nextClientId = (): string => `auth-client-${String(++clientCount).padStart(4, '0')}`;
  const nowSeconds = (): number => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    idp = await startTestIdp();
    server = await startServerProcess({
      args: ['--no-seed', '--auth-jwks-url', idp.jwksUrl, '--auth-issuer', idp.issuer, '--auth-audience', idp.audience],
    });
  });
  afterAll(async () => {
    for (const raw of raws) raw.close();
    await server.stop();
    await idp.close();
  });

  async function connect(): Promise<RawClient> {
    const raw = await rawClient(server.url);
    raws.push(raw);
    return raw;
  }

  async function helloWith(token: string, raw?: RawClient): Promise<ReturnType<typeof helloAckSchema.parse>> {
    return helloAckSchema.parse(await (raw ?? (await connect())).hello(token, nextClientId()));
  }

  it.each(IDP_ALGORITHMS)('a %s token from the key set opens a session as its subject', async (alg) => {
    const ack = await helloWith(await idp.sign(alg, { sub: `jwks-${alg}`, roles: ['staff'] }));
    expect(ack).toMatchObject({ ok: true, userId: `jwks-${alg}` });
  });

  it('expired, wrong-issuer, wrong-audience, wrong-key, not-yet-valid, alg none and HS256 tokens are UNAUTHORIZED', async () => {
    const now = nowSeconds();
    const bad: Array<[string, string, RegExp]> = [
      ['expired', await idp.sign('RS256', { sub: 'u', iat: now - 120, exp: now - 60 }), /^token expired$/],
      ['wrong issuer', await idp.sign('ES256', { sub: 'u', iss: 'https://evil.example/' }), /wrong 'iss'/],
      ['wrong audience', await idp.sign('EdDSA', { sub: 'u', aud: 'someone-else' }), /wrong 'aud'/],
      ['unknown key', await idp.sign('RS256', { sub: 'u' }, { stranger: true }), /no signing key/],
      ['wrong key', await idp.sign('ES256', { sub: 'u' }, { stranger: true, kid: 'idp-ES256' }), /signature/],
      ['not yet valid', await idp.sign('EdDSA', { sub: 'u', nbf: now + 600 }), /not yet valid/],
      [
        'alg none',
        new UnsecuredJWT({ sub: 'u', iss: idp.issuer, aud: idp.audience }).setExpirationTime('1h').encode(),
        /algorithm/,
      ],
      ['HS256 with the old secret', tokenFor('u'), /algorithm/],
    ];
    const raw = await connect();
    for (const [what, token, message] of bad) {
      const ack = await helloWith(token, raw);
      expect(ack.ok, what).toBe(false);
      if (!ack.ok) {
        expect([ack.error.code, ack.error.retryable], what).toEqual(['UNAUTHORIZED', false]);
        expect(ack.error.message, what).toMatch(message);
      }
    }
    // The same connection still takes a good token.
    expect(await helloWith(await idp.sign('RS256', { sub: 'finally' }), raw)).toMatchObject({ ok: true });
  });

  it('closes a session when its token expires, and only that session', async () => {
    const exp = nowSeconds() + 3;
    const shortLived = await connect();
    const longLived = await connect();
    expect(await helloWith(await idp.sign('ES256', { sub: 'brief', exp }), shortLived)).toMatchObject({ ok: true });
    expect(await helloWith(await idp.sign('ES256', { sub: 'lasting' }), longLived)).toMatchObject({ ok: true });
    let closedAt = 0;
    shortLived.socket.once('disconnect', () => (closedAt = Date.now()));
    await waitFor('the expired session to close', () => closedAt > 0, 10_000);
    expect(closedAt).toBeGreaterThanOrEqual(exp * 1000);
    expect(shortLived.received).toContainEqual({
      event: 'fatal',
      payload: { code: 'UNAUTHORIZED', message: 'token expired', retryable: false },
    });
    expect(longLived.socket.connected).toBe(true);
    expect(longLived.received.filter((r) => r.event === 'fatal')).toEqual([]);
  });

  it('GET /query takes a token from the key set and answers 401 with the reason for a bad one', async () => {
    const good = await idp.sign('EdDSA', { sub: 'reader' });
    const ok = await fetch(`${server.url}/query/orders`, { headers: { authorization: `Bearer ${good}` } });
    expect(ok.status).toBe(200);
    const expired = await idp.sign('EdDSA', { sub: 'reader', iat: nowSeconds() - 20, exp: nowSeconds() - 10 });
    const refused = await fetch(`${server.url}/query/notes`, { headers: { authorization: `Bearer ${expired}` } });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({
      error: { code: 'UNAUTHORIZED', message: 'token expired', retryable: false },
    });
    // No token at all still reads public collections.
    expect((await fetch(`${server.url}/query/notes`)).status).toBe(200);
  });

  it('has no dev login', async () => {
    const res = await fetch(`${server.url}/auth/dev-login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'alice' }),
    });
    expect(res.status).toBe(404);
    expect(server.output()).not.toContain('development login is on');
  });
});

describe('auth with a slow key set', () => {
  it('takes one hello at a time per connection while the keys are fetched', async () => {
    const idp = await startTestIdp();
    // A fresh server has no keys cached: its first hello waits for the fetch.
    const server = await startServerProcess({ args: ['--no-seed', '--auth-jwks-url', idp.jwksUrl] });
    const raw = await rawClient(server.url);
    try {
      idp.setDelay(1_500);
      const first = raw.hello(await idp.sign('RS256', { sub: 'patient' }), 'slow-jwks-0001');
      const second = raw.hello(await idp.sign('RS256', { sub: 'pushy' }), 'slow-jwks-0001');
      expect(helloAckSchema.parse(await second)).toEqual({
        ok: false,
        error: { code: 'RATE_LIMITED', message: 'a hello is in flight already', retryable: true },
      });
      expect(helloAckSchema.parse(await first)).toMatchObject({ ok: true, userId: 'patient' });
      expect(idp.fetches()).toBe(1);
    } finally {
      raw.close();
      await server.stop();
      await idp.close();
    }
  });
});

describe('the development login', () => {
  const login = (url: string, user: string): Promise<Response> =>
    fetch(`${url}/auth/dev-login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user }),
    });

  it('answers 404 unless the server runs with --dev-login', async () => {
    const server = await startServerProcess();
    try {
      const res = await login(server.url, 'alice');
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: { message: expect.stringContaining('--dev-login') as unknown } });
      expect(server.output()).not.toContain('development login is on');
    } finally {
      await server.stop();
    }
  });

  it('with --dev-login, signs tokens the server accepts, and the server warns', async () => {
    const server = await startServerProcess({ args: ['--no-seed', '--dev-login'] });
    const raw = await rawClient(server.url);
    try {
      expect(server.output()).toContain('WARNING: the development login is on');
      const res = await login(server.url, 'staff');
      expect(res.status).toBe(200);
      const body = (await res.json()) as { token: string; userId: string; roles: string[] };
      expect(body).toMatchObject({ userId: 'staff', roles: ['staff'] });
      const ack = helloAckSchema.parse(await raw.hello(body.token, 'dev-login-0001'));
      expect(ack).toMatchObject({ ok: true, userId: 'staff' });
      expect((await login(server.url, 'not a name!')).status).toBe(400);
    } finally {
      raw.close();
      await server.stop();
    }
  });
});
