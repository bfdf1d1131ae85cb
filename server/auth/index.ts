/**
 * Client token checks for the server: what `createServer({ auth })` takes
 * (`AuthOptions`) and the factory the composition root calls (`createAuth`).
 */
export { createAuth } from './verifier';
export type { Auth, AuthOptions, DevLogin, VerifiedPrincipal } from './verifier';
export { AUTH_FLAGS, AUTH_HELP, authConfig } from './auth-flags';
export type { AuthConfig } from './auth-flags';
export { bearerUsers } from './bearer';
export { TOKEN_EXPIRED } from './session-expiry';
