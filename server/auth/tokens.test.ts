import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TidelineError } from '../../shared/errors';
import { signToken, verifyToken } from './tokens';

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

/** Verifies and returns the UNAUTHORIZED error's message; fails if it verifies or fails otherwise. */
function refusal(token: string, secret = SECRET, now = NOW): string {
  let caught: unknown;
  try {
    verifyToken(secret, token, now);
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

describe('signToken and verifyToken', () => {
  it('round-trips the subject and roles, with iat and exp in seconds', () => {
    const token = signToken(SECRET, { sub: 'alice', roles: ['staff'] }, NOW + 999, 3600);
    const [header, payload, signature] = token.split('.');
    const decode = (part: string | undefined): unknown => JSON.parse(Buffer.from(part ?? '', 'base64url').toString());
    expect([decode(header), decode(payload)]).toEqual([
      { alg: 'HS256', typ: 'JWT' },
      { sub: 'alice', roles: ['staff'], iat: NOW / 1000, exp: NOW / 1000 + 3600 },
    ]);
    expect(signature).toBe(hs256(`${header}.${payload}`));
    expect(verifyToken(SECRET, token, NOW + 5000)).toEqual({
      sub: 'alice',
      roles: ['staff'],
      iat: NOW / 1000,
      exp: NOW / 1000 + 3600,
    });
  });

  it('defaults to no roles and a ttl of a week', () => {
    const claims = verifyToken(SECRET, signToken(SECRET, { sub: 'bob' }, NOW), NOW);
    expect(claims).toEqual({ sub: 'bob', roles: [], iat: NOW / 1000, exp: NOW / 1000 + 7 * 24 * 3600 });
  });

  it('writes a standard HS256 JWT that another implementation can check', () => {
    const token = signToken(SECRET, { sub: 'alice' }, NOW, 60);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(header, 'base64url').toString('utf8'))).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))).toEqual({
      sub: 'alice',
      roles: [],
      iat: NOW / 1000,
      exp: NOW / 1000 + 60,
    });
    expect(signature).toBe(hs256(`${header}.${payload}`));
    // And it accepts a token made elsewhere, roles left out.
    expect(verifyToken(SECRET, forge({ alg: 'HS256', typ: 'JWT' }, { sub: 'carol', iat: 1, exp: 2e9 }), NOW)).toEqual({
      sub: 'carol',
      roles: [],
      iat: 1,
      exp: 2e9,
    });
  });

  it('refuses a token signed with another secret', () => {
    const token = signToken('another-secret', { sub: 'alice' }, NOW);
    expect(refusal(token)).toMatch(/signature/);
  });

  it('refuses a tampered payload', () => {
    const token = signToken(SECRET, { sub: 'alice' }, NOW);
    const [header, , signature] = token.split('.') as [string, string, string];
    const roles = `${header}.${b64({ ...validClaims, sub: 'alice', roles: ['staff'] })}.${signature}`;
    expect(refusal(roles)).toMatch(/signature/);
    const someoneElse = `${header}.${b64({ ...validClaims, sub: 'mallory', roles: [] })}.${signature}`;
    expect(refusal(someoneElse)).toMatch(/signature/);
  });

  it('refuses a tampered or missing signature', () => {
    const token = signToken(SECRET, { sub: 'alice' }, NOW);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const flipped = Buffer.from(signature, 'base64url');
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(refusal(`${header}.${payload}.${flipped.toString('base64url')}`)).toMatch(/signature/);
    expect(refusal(`${header}.${payload}.`)).toMatch(/signature/);
    expect(refusal(`${header}.${payload}.${signature.slice(0, 20)}`)).toMatch(/signature/);
  });

  it('refuses alg none, whatever the signature', () => {
    const body = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(validClaims)}`;
    expect(refusal(`${body}.`)).toMatch(/HS256/);
    expect(refusal(`${body}.${hs256(body)}`)).toMatch(/HS256/);
  });

  it('refuses other algorithms, and a header without one', () => {
    expect(refusal(forge({ alg: 'HS512', typ: 'JWT' }, validClaims))).toMatch(/HS256/);
    const body512 = `${b64({ alg: 'HS512', typ: 'JWT' })}.${b64(validClaims)}`;
    const sig512 = createHmac('sha512', SECRET).update(body512).digest('base64url');
    expect(refusal(`${body512}.${sig512}`)).toMatch(/HS256/);
    expect(refusal(forge({ alg: 'RS256' }, validClaims))).toMatch(/HS256/);
    expect(refusal(forge({ alg: 'hs256' }, validClaims))).toMatch(/HS256/);
    expect(refusal(forge({ typ: 'JWT' }, validClaims))).toMatch(/HS256/);
    expect(refusal(forge(null, validClaims))).toMatch(/HS256/);
  });

  it('refuses an expired token, from the second it expires', () => {
    const token = signToken(SECRET, { sub: 'alice' }, NOW, 60);
    expect(verifyToken(SECRET, token, NOW + 59_999).sub).toBe('alice');
    expect(refusal(token, SECRET, NOW + 60_000)).toMatch(/expired/);
    expect(refusal(token, SECRET, NOW + 365 * 24 * 3600 * 1000)).toMatch(/expired/);
    expect(refusal(signToken(SECRET, { sub: 'alice' }, NOW, 0))).toMatch(/expired/);
  });

  it('refuses malformed tokens', () => {
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
      expect(refusal(token), token).toMatch(/malformed|HS256|signature/);
    }
  });

  it('refuses well-signed tokens whose claims are malformed', () => {
    const header = { alg: 'HS256', typ: 'JWT' };
    for (const claims of [
      {},
      { ...validClaims, sub: '' },
      { ...validClaims, sub: 42 },
      { ...validClaims, sub: 'x'.repeat(129) },
      { ...validClaims, roles: 'staff' },
      { ...validClaims, roles: [1] },
      { ...validClaims, exp: undefined },
      { ...validClaims, exp: 'never' },
      { ...validClaims, iat: undefined },
      [validClaims],
      'alice',
      null,
    ]) {
      expect(refusal(forge(header, claims)), JSON.stringify(claims)).toMatch(/claims are malformed/);
    }
  });
});
