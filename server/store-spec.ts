import { hostname } from 'node:os';
import { TidelineError } from '../shared/errors';
import { checkNodeId, NODE_ID } from './store/pg-nodes';
import { checkSchemaName } from './store/pg-schema';

/**
 * Which store a node runs on (`--store`): the embedded SQLite file in the
 * data directory (the default, one writer with optional replicas), or a
 * PostgreSQL database shared by any number of nodes, each a writer.
 */
export type StoreSpec = { kind: 'sqlite' } | { kind: 'postgres'; url: string; pgSchema: string };

/** The PostgreSQL schema (namespace) the store's tables live in unless `--pg-schema` names another. */
export const DEFAULT_PG_SCHEMA = 'tideline';

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/**
 * The store of `--store URL` and `--pg-schema NAME` (or their `createServer`
 * options): no URL (or `sqlite`) is SQLite in the data directory; a
 * `postgres://` or `postgresql://` URL is PostgreSQL. Throws BAD_REQUEST on
 * anything else, or a schema name that is not a plain identifier.
 */
export function parseStoreSpec(url: string | undefined, pgSchema: string | undefined): StoreSpec {
  if (url === undefined || url === '' || url === 'sqlite') {
    if (pgSchema !== undefined) {
      throw new TidelineError('BAD_REQUEST', '--pg-schema applies only with --store postgres://…');
    }
    return { kind: 'sqlite' };
  }
  if (!isPostgresUrl(url)) {
    throw new TidelineError(
      'BAD_REQUEST',
      `--store must be a postgres:// or postgresql:// URL, got '${redactUrl(url)}'`,
      {
        hint: 'leave --store out to keep the embedded SQLite store in --data',
      },
    );
  }
  try {
    new URL(url);
  } catch {
    throw new TidelineError('BAD_REQUEST', `--store '${redactUrl(url)}' is not a URL`);
  }
  return { kind: 'postgres', url, pgSchema: checkSchemaName(pgSchema ?? DEFAULT_PG_SCHEMA) };
}

/** A connection string fit for logs and status: the password replaced by ***. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):[^@/?#]*@/i, '$1:***@');
}

/** `--node-id`: checked, or null when not given (the node names itself once it listens). */
export function parseNodeId(nodeId: string | undefined): string | null {
  if (nodeId === undefined || nodeId === '') return null;
  return checkNodeId(nodeId);
}

/** A node's name when none is given: host name and port, which tell an operator where to look. */
export function defaultNodeId(port: number): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9_.-]/g, '-')
      .slice(0, 100) || 'node';
  const id = `${host}-${port}`;
  return NODE_ID.test(id) ? id : `node-${port}`;
}

/** What a PostgreSQL node is started with, beside the store: the parts of the config these checks read. */
export interface PgNodeInputs {
  /** Replication and failover flags given (--primary, --peers, --min-sync-replicas, --restore, --role replica). */
  replication: string[];
  secret: string | null;
  jwksUrl: string | undefined;
  adminToken: string | null;
}

/**
 * Why a PostgreSQL node cannot start with these inputs, or null. Every node
 * of a PostgreSQL cluster takes writes, so the primary/replica flags mean
 * nothing there; nodes share clients (any node may get any reconnect) and
 * keep nothing on disk, so the token secret and the admin token must be
 * given, the same on every node, rather than made in a data directory.
 */
export function pgNodeProblem(inputs: PgNodeInputs, names: { secret: string; adminToken: string }): string | null {
  if (inputs.replication.length > 0) {
    return `${inputs.replication.join(', ')} cannot be used with a PostgreSQL store: every node on it takes writes, and PostgreSQL's own replication keeps the data (docs/deploy.md)`;
  }
  const missing = [
    ...(inputs.secret === null && inputs.jwksUrl === undefined ? [names.secret] : []),
    ...(inputs.adminToken === null ? [names.adminToken] : []),
  ];
  if (missing.length > 0) {
    return `a node on a PostgreSQL store needs ${missing.join(' and ')}, the same on every node (nodes share clients and keep no files)`;
  }
  return null;
}

/** Where a node keeps its data, for its start-up line: the data directory, or the PostgreSQL store (password hidden). */
export function describeStore(store: StoreSpec | undefined, dataDir: string): string {
  return store?.kind === 'postgres' ? `store ${redactUrl(store.url)} schema ${store.pgSchema}` : `data in ${dataDir}`;
}
