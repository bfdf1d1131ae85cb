import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { TidelineError } from '../../shared/errors';
import { nodesTableSql } from './pg-nodes';

/**
 * Version of the tables below, kept in `meta`. Bump it with every change to
 * them and teach `initPgSchema` to migrate older schemas; a schema of a newer
 * version is refused, because this code would misread it.
 *
 * History:
 * 1 — the tables of SQLite store version 6 (docs with authors, changes,
 *     outcomes, clients with bindings, rejections, idempotency, usage, meta),
 *     plus `head`, the one row every commit locks (see pg-store.ts).
 * 2 — `nodes`, the node registry (pg-nodes.ts); a version 1 schema gains it.
 */
export const PG_SCHEMA_VERSION = 2;

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The schema name, checked: it is spliced into SQL, so only plain lower-case identifiers are taken. */
export function checkSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new TidelineError('BAD_REQUEST', `'${schema}' is not a usable PostgreSQL schema name`, {
      hint: 'use lower-case letters, digits and _ (at most 63), starting with a letter or _',
    });
  }
  return schema;
}

/*
 * Ids and collections are `COLLATE "C"`, so (collection, id) order is code
 * point order, as SQLite's BINARY and the memory store order them. Bodies
 * are JSON text (see pg-query.ts). `head` holds what SQLite's meta keeps in
 * counters: the head LSN, the term and the horizon, in one row that a commit
 * locks to take its LSNs.
 */
const tables = (s: string): string => `
  CREATE TABLE IF NOT EXISTS ${s}.meta (key text PRIMARY KEY, value text NOT NULL);
  CREATE TABLE IF NOT EXISTS ${s}.head (
    id int PRIMARY KEY CHECK (id = 1),
    lsn bigint NOT NULL,
    term bigint NOT NULL,
    horizon bigint NOT NULL
  );
  CREATE TABLE IF NOT EXISTS ${s}.docs (
    collection text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    owner text,
    lsn bigint NOT NULL,
    deleted boolean NOT NULL,
    body text,
    author text,
    PRIMARY KEY (collection, id)
  );
  CREATE INDEX IF NOT EXISTS docs_tombstones ON ${s}.docs (lsn) WHERE deleted;
  CREATE INDEX IF NOT EXISTS docs_owner ON ${s}.docs (owner, collection, id) WHERE NOT deleted AND owner IS NOT NULL;
  CREATE TABLE IF NOT EXISTS ${s}.changes (
    lsn bigint PRIMARY KEY,
    term bigint NOT NULL,
    collection text NOT NULL,
    id text NOT NULL,
    owner text,
    deleted boolean NOT NULL,
    body text,
    client_id text,
    seq bigint,
    ts bigint NOT NULL
  );
  CREATE TABLE IF NOT EXISTS ${s}.outcomes (
    lsn bigint PRIMARY KEY,
    term bigint NOT NULL,
    client_id text NOT NULL,
    seq bigint NOT NULL,
    code text,
    message text,
    retryable boolean,
    ts bigint NOT NULL
  );
  CREATE TABLE IF NOT EXISTS ${s}.clients (client_id text PRIMARY KEY, last_seq bigint NOT NULL, user_id text);
  CREATE TABLE IF NOT EXISTS ${s}.rejections (
    client_id text NOT NULL,
    seq bigint NOT NULL,
    code text NOT NULL,
    message text NOT NULL,
    retryable boolean NOT NULL,
    PRIMARY KEY (client_id, seq)
  );
  CREATE TABLE IF NOT EXISTS ${s}.idempotency (origin text PRIMARY KEY, lsn bigint NOT NULL, ts bigint NOT NULL);
  CREATE INDEX IF NOT EXISTS idempotency_ts ON ${s}.idempotency (ts);
  CREATE TABLE IF NOT EXISTS ${s}.usage (
    collection text NOT NULL,
    user_id text NOT NULL,
    docs bigint NOT NULL,
    bytes bigint NOT NULL,
    PRIMARY KEY (collection, user_id)
  );
`;

/** Every author's documents and bytes, counted again from the live documents (a snapshot import). */
export const rebuildUsageSql = (s: string): string => `
  DELETE FROM ${s}.usage;
  INSERT INTO ${s}.usage (collection, user_id, docs, bytes)
    SELECT collection, author, COUNT(*), SUM(octet_length(body)) FROM ${s}.docs
    WHERE NOT deleted AND author IS NOT NULL GROUP BY collection, author;
`;

/**
 * Creates (or checks) the store's tables in `schema`. Nodes starting at once
 * take turns on an advisory lock, so two never race to create the same table.
 */
export async function initPgSchema(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tideline-schema:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    const had = await client.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [
      `${schema}.meta`,
    ]);
    if (had.rows[0]?.present === true) {
      const row = await client.query<{ value: string }>(
        `SELECT value FROM ${schema}.meta WHERE key = 'schema_version'`,
      );
      const version = Number(row.rows[0]?.value);
      if (!Number.isInteger(version)) {
        throw new TidelineError('INTERNAL', `schema ${schema} has no valid Tideline schema version`, {
          hint: 'point the node at another --schema, or restore this one from a backup',
        });
      }
      if (version > PG_SCHEMA_VERSION) {
        throw new TidelineError(
          'INTERNAL',
          `schema ${schema} has store schema version ${version}, newer than this build's ${PG_SCHEMA_VERSION}`,
          { hint: 'run the Tideline version that wrote this schema, or a newer one, on every node' },
        );
      }
    }
    await client.query(tables(schema));
    await client.query(nodesTableSql(schema));
    const insert = `INSERT INTO ${schema}.meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`;
    await client.query(insert, ['schema_version', String(PG_SCHEMA_VERSION)]);
    await client.query(insert, ['server_id', randomUUID()]);
    await client.query(insert, ['cluster_id', randomUUID()]);
    await client.query(insert, ['terms', JSON.stringify([{ term: 1, startLsn: 0 }])]);
    await client.query(
      `INSERT INTO ${schema}.head (id, lsn, term, horizon) VALUES (1, 0, 1, 0) ON CONFLICT (id) DO NOTHING`,
    );
    // An older schema now has every table of this version (each CREATE above is IF NOT EXISTS).
    await client.query(`UPDATE ${schema}.meta SET value = $1 WHERE key = 'schema_version' AND value::int < $2`, [
      String(PG_SCHEMA_VERSION),
      PG_SCHEMA_VERSION,
    ]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
