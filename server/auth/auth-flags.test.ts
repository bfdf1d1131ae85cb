import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config';
import type { ServerConfig } from '../config';

const authOf = (argv: string[], env: NodeJS.ProcessEnv = {}): ServerConfig['auth'] => {
  const config = parseConfig(argv, env);
  if (config === 'help') throw new Error('help');
  return config.auth;
};

describe('auth flags and environment', () => {
  it('default to HS256 with no issuer or audience, and the dev login off', () => {
    expect(authOf([])).toEqual({ devLogin: false });
  });

  it('read each option from its flag, else from its variable', () => {
    const env = {
      TIDELINE_AUTH_JWKS_URL: 'https://env.example/jwks',
      TIDELINE_AUTH_ISSUER: 'https://env.example/',
      TIDELINE_AUTH_AUDIENCE: 'env-api',
      TIDELINE_AUTH_USER_CLAIM: 'email',
      TIDELINE_AUTH_ROLES_CLAIM: 'groups',
    };
    expect(authOf([], env)).toEqual({
      devLogin: false,
      jwksUrl: 'https://env.example/jwks',
      issuer: 'https://env.example/',
      audience: 'env-api',
      userClaim: 'email',
      rolesClaim: 'groups',
    });
    const flags = ['--auth-jwks-url', 'https://flag.example/jwks', '--auth-audience', 'flag-api'];
    expect(
      authOf([...flags, '--auth-user-claim', 'uid', '--auth-roles-claim', 'perms', '--auth-issuer', 'i'], env),
    ).toEqual({
      devLogin: false,
      jwksUrl: 'https://flag.example/jwks',
      issuer: 'i',
      audience: 'flag-api',
      userClaim: 'uid',
      rolesClaim: 'perms',
    });
    expect(authOf([], { TIDELINE_AUTH_ISSUER: '' })).toEqual({ devLogin: false });
  });

  it('turn the dev login on only with --dev-login, and never with a JWKS', () => {
    expect(authOf(['--dev-login'])).toEqual({ devLogin: true });
    expect(() => authOf(['--dev-login', '--auth-jwks-url', 'https://idp.example/jwks'])).toThrow(/--dev-login/);
    expect(() => authOf(['--dev-login'], { TIDELINE_AUTH_JWKS_URL: 'https://idp.example/jwks' })).toThrow(
      /--dev-login/,
    );
  });
});
