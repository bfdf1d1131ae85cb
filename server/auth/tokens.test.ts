import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TidelineError } from '../../shared/errors';
import { signToken } from './tokens';
import { createAuth } from './verifier';

const SECRET = 'test-secret-0123456789abcdef';
const NOW = 1_700_000_000_000;
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const hs256 = (data: string, secret = SECRET): string => createHmac('sha256', secret).update(data).digest('base64url');

/** A token with any header and payload, signed with HS256 over exactly those bytes. */
function forge(header: unknown, payload: unknown, secret = SECRET): string {
  const body = `${b64(header)}.${b64(payload)}`;
  return `${body}.${hs256(body, secret)}`;
}

const validClaims = { sub: 'alice', roles: ['staff'], iat: NOW / 1000, exp: NOW / 1000 + 60 };

/** The server's HS256 check (jose) at time `now`. */
const verify = (token: string, secret = SECRET, now = NOW): ReturnType<ReturnType<typeof createAuth>['verify']> =>
  createAuth({ secret }, () => now).verify(token);

/** Verifies and returns the UNAUTHORIZED error's message; fails if it verifies or fails otherwise. */
async function refusal(token: string, secret = SECRET, now = NOW): Promise<string> {
  let caught: unknown;
  try {
    await verify(token, secret, now);
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error(`the token verified: ${token}`);
  expect(caught).toBeInstanceOf(TidelineError);
  const err = caught as TidelineError;
  expect(err.code).toBe('UNAUTHORIZED');
  expect(err.retryable).toBe(false);
  return err.message;
}

describe('signToken, checked by the HS256 verifier', () => {
  it('round-trips the subject and roles, with iat and exp in seconds', async () => {
    const token = signToken(SECRET, { sub: 'alice', roles: ['staff'] }, NOW + 999, 3600);
    const [header, payload, signature] = token.split('.');
    const decode = (part: string | undefined): unknown => JSON.parse(Buffer.from(part ?? '', 'base64url').toString());
    expect([decode(header), decode(payload)]).toEqual([
      { alg: 'HS256', typ: 'JWT' },
      { sub: 'alice', roles: ['staff'], iat: NOW / 1000, exp: NOW / 1000 + 3600 },
    ]);
    expect(signature).toBe(hs256(`${header}.${payload}`));
    expect(await verify(token, SECRET, NOW + 5000)).toEqual({
      userId: 'alice',
      roles: ['staff'],
      expiresAt: NOW + 3600 * 1000,
    });
  });

  it('defaults to no roles and a ttl of a week', async () => {
    expect(await verify(signToken(SECRET, { sub: 'bob' }, NOW))).toEqual({
      userId: 'bob',
      roles: [],
      expiresAt: NOW + 7 * 24 * 3600 * 1000,
    });
  });

  it('accepts a token made elsewhere, roles and iat left out', async () => {
    expect(await verify(forge({ alg: 'HS256', typ: 'JWT' }, { sub: 'carol', exp: 2e9 }))).toEqual({
      userId: 'carol',
      roles: [],
      expiresAt: 2e12,
    });
  });

  it('refuses a token signed with another secret', async () => {
    const token = signToken('another-secret', { sub: 'alice' }, NOW);
    expect(await refusal(token)).toMatch(/signature/);
  });

  it('refuses a tampered payload', async () => {
    const token = signToken(SECRET, { sub: 'alice' }, NOW);
    const [header, , signature] = token.split('.') as [string, string, string];
    const roles = `${header}.${b64({ ...validClaims, sub: 'alice', roles: ['staff'] })}.${signature}`;
    expect(await refusal(roles)).toMatch(/signature/);
    const someoneElse = `${header}.${b64({ ...validClaims, sub: 'mallory', roles: [] })}.${signature}`;
    expect(await refusal(someoneElse)).toMatch(/signature/);
  });

  it('refuses a tampered or missing signature', async () => {
    const token = signToken(SECRET, { sub: 'alice' }, NOW);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const flipped = Buffer.from(signature, 'base64url');
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(await refusal(`${header}.${payload}.${flipped.toString('base64url')}`)).toMatch(/signature/);
    expect(await refusal(`${header}.${payload}.`)).toMatch(/signature|malformed/);
    expect(await refusal(`${header}.${payload}.${signature.slice(0, 20)}`)).toMatch(/signature/);
  });

  it('refuses alg none, whatever the signature', async () => {
    const body = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(validClaims)}`;
    expect(await refusal(`${body}.`)).toMatch(/algorithm/);
    expect(await refusal(`${body}.${hs256(body)}`)).toMatch(/algorithm/);
  });

  it('refuses other algorithms, and a header without one', async () => {
    expect(await refusal(forge({ alg: 'HS512', typ: 'JWT' }, validClaims))).toMatch(/algorithm/);
    const body512 = `${b64({ alg: 'HS512', typ: 'JWT' })}.${b64(validClaims)}`;
    const sig512 = createHmac('sha512', SECRET).update(body512).digest('base64url');
    expect(await refusal(`${body512}.${sig512}`)).toMatch(/algorithm/);
    expect(await refusal(forge({ alg: 'RS256' }, validClaims))).toMatch(/algorithm/);
    expect(await refusal(forge({ alg: 'hs256' }, validClaims))).toMatch(/algorithm/);
    expect(await refusal(forge({ typ: 'JWT' }, validClaims))).toMatch(/malformed/);
    expect(await refusal(forge(null, validClaims))).toMatch(/malformed/);
  });

  it('refuses an expired token, from the second it expires', async () => {
    const token = signToken(SECRET, { sub: 'alice' }, NOW, 60);
    expect((await verify(token, SECRET, NOW + 59_999)).userId).toBe('alice');
    expect(await refusal(token, SECRET, NOW + 60_000)).toBe('token expired');
    expect(await refusal(token, SECRET, NOW + 365 * 24 * 3600 * 1000)).toBe('token expired');
    expect(await refusal(signToken(SECRET, { sub: 'alice' }, NOW, 0))).toBe('token expired');
  });

  it('refuses malformed tokens', async () => {
    const good = signToken(SECRET, { sub: 'alice' }, NOW);
    for (const token of [
      '',
      'abc',
      'a.b',
      `${good}.extra`,
      'not-base64!.not-json.sig',
      `${Buffer.from('{').toString('base64url')}.${b64(validClaims)}.sig`,
      `${b64({ alg: 'HS256' })}.${Buffer.from('not json').toString('base64url')}.sig`,
      '..',
    ]) {
      expect(await refusal(token), token).toMatch(/malformed|signature/);
    }
  });

  it('refuses well-signed tokens whose claims are malformed', async () => {
    const header = { alg: 'HS256', typ: 'JWT' };
    for (const [claims, reason] of [
      [{}, /no 'exp' claim/],
      [{ ...validClaims, sub: '' }, /'sub' must be a user id/],
      [{ ...validClaims, sub: 42 }, /'sub' must be a user id/],
      [{ ...validClaims, sub: 'x'.repeat(129) }, /'sub' must be a user id/],
      [{ ...validClaims, roles: [1] }, /'roles' must be/],
      [{ ...validClaims, roles: Array.from({ length: 65 }, (_, i) => `r${i}`) }, /'roles' must be/],
      [{ ...validClaims, exp: undefined }, /no 'exp' claim/],
      [{ ...validClaims, exp: 'never' }, /malformed/],
      [{ ...validClaims, iat: 'then' }, /malformed/],
      [[validClaims], /malformed/],
      ['alice', /malformed/],
      [null, /malformed/],
    ] as const) {
      expect(await refusal(forge(header, claims)), JSON.stringify(claims)).toMatch(reason);
    }
  });

  it('reads roles given as one space-separated string, as OAuth scopes are', async () => {
    const token = forge({ alg: 'HS256' }, { ...validClaims, roles: 'staff  admin' });
    expect((await verify(token)).roles).toEqual(['staff', 'admin']);
  });
});
