import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';

/** The asymmetric algorithms an identity provider signs with, one key each. */
export const IDP_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
export type IdpAlgorithm = (typeof IDP_ALGORITHMS)[number];

interface KeyPair {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/**
 * A stand-in identity provider: a JSON Web Key Set served over HTTP on
 * 127.0.0.1 (port 0), and a signer for tokens with its keys, or with keys it
 * does not publish (a wrong-key token).
 */
export interface TestIdp {
  /** Where the key set is served. */
  jwksUrl: string;
  issuer: string;
  audience: string;
  /** Key set requests served so far. */
  fetches(): number;
  /** Answers key set requests this much later from now on (a slow identity provider). */
  setDelay(ms: number): void;
  /**
   * A token for `claims` over defaults (`iss`, `aud`, `iat` now, `exp` in an
   * hour; set a claim to undefined to leave it out), signed with the published
   * key of `alg`, or with an unpublished one (`stranger`), under its own kid or `kid`.
   */
  sign(
    alg: IdpAlgorithm,
    claims: Record<string, unknown>,
    options?: { stranger?: boolean; kid?: string },
  ): Promise<string>;
  close(): Promise<void>;
}

async function keyPair(alg: IdpAlgorithm, kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export async function startTestIdp(): Promise<TestIdp> {
  const published = new Map<IdpAlgorithm, KeyPair>();
  const strangers = new Map<IdpAlgorithm, KeyPair>();
  for (const alg of IDP_ALGORITHMS) {
    published.set(alg, await keyPair(alg, `idp-${alg}`));
    strangers.set(alg, await keyPair(alg, `stranger-${alg}`));
  }
  let fetches = 0;
  let delayMs = 0;
  const http = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    fetches++;
    const body = JSON.stringify({ keys: [...published.values()].map((k) => k.publicJwk) });
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body), delayMs);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const issuer = `${base}/`;
  const audience = 'tideline-test';
  return {
    jwksUrl: `${base}/.well-known/jwks.json`,
    issuer,
    audience,
    fetches: () => fetches,
    setDelay: (ms) => void (delayMs = ms),
    async sign(alg, claims, options = {}) {
      const key = (options.stranger ? strangers : published).get(alg);
      if (!key) throw new Error(`no ${alg} key`);
      const now = Math.floor(Date.now() / 1000);
      const payload = Object.fromEntries(
        Object.entries({ iss: issuer, aud: audience, iat: now, exp: now + 3600, ...claims }).filter(
          ([, v]) => v !== undefined,
        ),
      ) as JWTPayload;
      return new SignJWT(payload)
        .setProtectedHeader({ alg, kid: options.kid ?? key.kid, typ: 'JWT' })
        .sign(key.privateKey);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        http.closeAllConnections();
        http.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
