import { errors } from 'jose';
import { TidelineError } from '../../shared/errors';

/**
 * Turns what `jose` throws into the error a client sees. A token that is bad
 * in any way is UNAUTHORIZED and not retryable (the client needs a new
 * token); signing keys that cannot be fetched are the server's trouble, so
 * INTERNAL and retryable: a client must not give up because the identity
 * provider blinked.
 */
export function refusal(err: unknown, jwksUrl: string | null): TidelineError {
  if (err instanceof TidelineError) return err;
  const no = (message: string): TidelineError => new TidelineError('UNAUTHORIZED', message, { cause: err });
  if (err instanceof errors.JWTExpired) return no('token expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' && err.reason === 'check_failed') return no('token is not yet valid');
    if (err.reason === 'missing') return no(`token has no '${err.claim}' claim`);
    if (err.claim === 'iss' || err.claim === 'aud') return no(`token has the wrong '${err.claim}' (issuer/audience)`);
    return no(`token claims are malformed: '${err.claim}' ${err.reason.replace('_', ' ')}`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return no('token algorithm is not accepted');
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return no('bad token signature');
  if (err instanceof errors.JWKSNoMatchingKey) return no('no signing key matches the token');
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return no('malformed token');
  if (jwksUrl !== null) {
    // JWKSTimeout, JWKSInvalid, a non-200 answer, a refused connection: the key set is unavailable.
    return new TidelineError('INTERNAL', 'cannot get the signing keys to check the token', {
      cause: err,
      retryable: true,
      hint: `fetching ${jwksUrl} failed: ${err instanceof Error ? err.message : String(err)}`,
    });
  }
  // With a shared secret nothing is fetched: whatever else jose refused is a bad token.
  return no('malformed token');
}
