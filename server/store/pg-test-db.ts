import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * A database of its own for one test file on the test PostgreSQL
 * (`TIDELINE_TEST_PG_URL`, else postgres://postgres@127.0.0.1:5432/postgres;
 * `scripts/ensure-postgres.mjs` makes sure one runs), dropped at the end.
 */
export interface TestDatabase {
  /** The connection string of the new database. */
  url: string;
  drop(): Promise<void>;
}

export const TEST_PG_URL = process.env['TIDELINE_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `tideline_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `no PostgreSQL at ${TEST_PG_URL.replace(/:[^:@/]*@/, ':***@')} for the store tests: run \`node scripts/ensure-postgres.mjs\`, or set TIDELINE_TEST_PG_URL`,
      { cause: err },
    );
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: TEST_PG_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
