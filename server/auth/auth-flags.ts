import type { AuthOptions } from './verifier';

/** How the CLI configures client tokens: each --auth-* flag defaults to its TIDELINE_AUTH_* variable. */
export type AuthConfig = Omit<AuthOptions, 'secret' | 'staff'>;

/** The flags for node:util parseArgs. */
export const AUTH_FLAGS = {
  'auth-jwks-url': { type: 'string' },
  'auth-issuer': { type: 'string' },
  'auth-audience': { type: 'string' },
  'auth-user-claim': { type: 'string' },
  'auth-roles-claim': { type: 'string' },
  'dev-login': { type: 'boolean' },
} as const;

export const AUTH_HELP = `Client tokens (JWT; HS256 with TIDELINE_SECRET unless a JWKS URL is given):
  --auth-jwks-url URL         verify with the identity provider's keys (RS256, ES256, EdDSA)
  --auth-issuer ISS           the "iss" every token must carry
  --auth-audience AUD         the "aud" every token must carry
  --auth-user-claim NAME      the claim that names the user (default sub)
  --auth-roles-claim NAME     the claim that holds the roles (default roles)
  --dev-login                 serve POST /auth/dev-login, a token for any user name: development only
  Each --auth-* flag defaults to its environment variable: TIDELINE_AUTH_JWKS_URL, TIDELINE_AUTH_ISSUER,
  TIDELINE_AUTH_AUDIENCE, TIDELINE_AUTH_USER_CLAIM, TIDELINE_AUTH_ROLES_CLAIM.`;

const VARIABLES = {
  jwksUrl: ['auth-jwks-url', 'TIDELINE_AUTH_JWKS_URL'],
  issuer: ['auth-issuer', 'TIDELINE_AUTH_ISSUER'],
  audience: ['auth-audience', 'TIDELINE_AUTH_AUDIENCE'],
  userClaim: ['auth-user-claim', 'TIDELINE_AUTH_USER_CLAIM'],
  rolesClaim: ['auth-roles-claim', 'TIDELINE_AUTH_ROLES_CLAIM'],
} as const;

/** The auth part of the server config, from parsed flags and the environment; unset options are left out. */
export function authConfig(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): AuthConfig {
  const auth: AuthConfig = { devLogin: values['dev-login'] === true };
  for (const [option, [flag, variable]] of Object.entries(VARIABLES) as Array<
    [keyof typeof VARIABLES, readonly [string, string]]
  >) {
    const flagValue = values[flag];
    const value = typeof flagValue === 'string' ? flagValue : env[variable] || undefined;
    if (value !== undefined) auth[option] = value;
  }
  if (auth.devLogin && auth.jwksUrl !== undefined) {
    throw new Error('--dev-login signs tokens with the HS256 secret; it cannot be on with --auth-jwks-url');
  }
  return auth;
}
