import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TidelineError } from '../shared/errors';
import { ensurePrivateDir, makePrivate, writePrivateFileAtomically } from './store/private-files';

/**
 * The shortest secret accepted, in characters (whitespace at either end not
 * counted). An HMAC key or bearer token shorter than this is guessable; the
 * ones made here are 43.
 */
export const MIN_SECRET_LENGTH = 16;

/**
 * Returns `given` (from `givenFrom`, an environment variable or an option),
 * or the secret kept in `<dataDir>/<file>`, creating it (0600, written
 * atomically) on first use. An empty or short secret from either source is
 * refused: it would sign tokens anyone can forge.
 */
export function loadOrCreateSecret(dataDir: string, file: string, given: string | null, givenFrom: string): string {
  if (given !== null) return checked(given, givenFrom, 'or unset it to have one made and kept in the data directory');
  const path = join(dataDir, file);
  if (existsSync(path)) {
    makePrivate(path);
    return checked(readFileSync(path, 'utf8').trim(), path, `or delete ${path} to have a new one made`);
  }
  ensurePrivateDir(dataDir);
  const secret = randomBytes(32).toString('base64url');
  writePrivateFileAtomically(path, `${secret}\n`);
  return secret;
}

/**
 * A secret that must be given (a node with no data directory to keep one
 * in: PostgreSQL), checked as `loadOrCreateSecret` checks one.
 */
export function givenSecret(given: string | null, givenFrom: string): string {
  if (given === null) {
    throw new TidelineError('BAD_REQUEST', `${givenFrom} is not set`, {
      hint: 'every node of a PostgreSQL cluster needs the same one: set it on each (for example from openssl rand -base64 32)',
    });
  }
  return checked(given, givenFrom, 'the same on every node');
}

function checked(secret: string, source: string, otherwise: string): string {
  const length = secret.trim().length;
  if (length < MIN_SECRET_LENGTH) {
    throw new TidelineError(
      'BAD_REQUEST',
      `the secret from ${source} is ${length === 0 ? 'empty' : `${length} characters`}; at least ${MIN_SECRET_LENGTH} are needed`,
      {
        hint: `set a random secret of ${MIN_SECRET_LENGTH} or more characters (for example: openssl rand -base64 32), ${otherwise}`,
      },
    );
  }
  return secret;
}
