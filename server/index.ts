import type { Doc, JsonValue } from '../shared/json';
import { DEFAULT_LIMITS } from '../shared/protocol/limits';
import type { Limits } from '../shared/protocol/limits';
import type { AppSchema } from '../shared/schema/define-schema';
import { startServer } from './app';
import type { RunningServer } from './app';
import type { AuthOptions } from './auth';
import type { Role } from './cluster/cluster-node';
import type { ServerConfig } from './config';
import { TidelineError } from '../shared/errors';
import { parseNodeId, parseStoreSpec, pgNodeProblem } from './store-spec';
import { DEFAULT_FLOOD_LIMITS } from './sync/flood-limits';
import type { FloodLimits } from './sync/flood-limits';
import { DEFAULT_MAX_SESSION_BUFFER_BYTES, DEFAULT_PAGE_ACK_TIMEOUT_MS } from './sync/socket-sync';
import { DEFAULT_MAX_CONCURRENT_SNAPSHOTS, DEFAULT_PAGE_BYTES, DEFAULT_SNAPSHOT_PAGE_BYTES } from './sync/sync-core';
import { parseDocQuery, queryPage } from './http/query-route';
import type { Seed, SeedWrite } from './seed';
import { SYSTEM } from './sync/server-write';
import type { ServerPrincipal, ServerWriteResult, UserPrincipal } from './sync/server-write';

/**
 * What one client session may hold on the server (docs/ARCHITECTURE.md, "Limits and abuse"); each is the
 * `createServer` form of a CLI flag.
 */
export interface SessionLimits {
  /** Unsent bytes a session may hold before it is closed, `RATE_LIMITED` (`--max-session-buffer-bytes`). */
  maxBufferBytes: number;
  /** Bytes per catch-up page, to clients and replicas; one larger mutation comes alone (`--catch-up-page-bytes`). */
  catchUpPageBytes: number;
  /** Bytes per snapshot page (at most 500 documents); one larger document comes alone (`--snapshot-page-bytes`). */
  snapshotPageBytes: number;
  /** Snapshots streamed at once; other sessions wait their turn (`--max-concurrent-snapshots`). */
  maxConcurrentSnapshots: number;
  /** A page not acked within this closes the session, `RATE_LIMITED` (`--page-ack-timeout-ms`). */
  pageAckTimeoutMs: number;
}

export const DEFAULT_SESSION_LIMITS: Readonly<SessionLimits> = {
  maxBufferBytes: DEFAULT_MAX_SESSION_BUFFER_BYTES,
  catchUpPageBytes: DEFAULT_PAGE_BYTES,
  snapshotPageBytes: DEFAULT_SNAPSHOT_PAGE_BYTES,
  maxConcurrentSnapshots: DEFAULT_MAX_CONCURRENT_SNAPSHOTS,
  pageAckTimeoutMs: DEFAULT_PAGE_ACK_TIMEOUT_MS,
};

export { DEFAULT_FLOOD_LIMITS, SYSTEM };
export type {
  AppSchema,
  AuthOptions,
  FloodLimits,
  Limits,
  Role,
  Seed,
  SeedWrite,
  ServerPrincipal,
  ServerWriteResult,
  UserPrincipal,
};

/** Replication and failover; leave it out for a single primary. */
export interface ReplicationOptions {
  /** Follow this primary as a read-only replica. */
  primaryUrl?: string;
  /** Other nodes, asked for a primary with a higher term (failover). */
  peers?: readonly string[];
  /** Client acks wait until this many replicas have applied the change (default 0). */
  minSyncReplicas?: number;
  /** Authenticates replicas; the same on every node. Default: kept in `<dataDir>/cluster.key`. */
  clusterSecret?: string;
  /** Start from this backup file (into an empty data directory), then catch up from `primaryUrl`. */
  restoreFrom?: string;
  /** How other nodes and clients reach this one; default the listen URL. */
  publicUrl?: string;
  /** The longest a replica holds a `/query?minLsn=` for that LSN before `NOT_READY` (default 2000 ms). */
  readWaitMs?: number;
  /** `/query` requests waiting for `minLsn` at once; more get `RATE_LIMITED` (default 1000). */
  maxReadWaiters?: number;
}

/** When the change log is compacted (clients further behind get a snapshot). */
export interface CompactionOptions {
  maxLogChanges?: number;
  maxLogAgeMs?: number;
  intervalMs?: number;
}

export interface CreateServerOptions {
  /** The app's schema (`defineSchema`), the same module its clients open. */
  schema: AppSchema;
  /**
   * Where the SQLite store, secrets and backups live; created if missing.
   * Required unless `store` is a PostgreSQL URL (a PostgreSQL node keeps no
   * files, and refuses one).
   */
  dataDir?: string;
  /**
   * The store: left out, the embedded SQLite store in `dataDir`; a
   * `postgres://` or `postgresql://` URL, a database shared by any number
   * of nodes, each a writer (the CLI's `--store`). On PostgreSQL, `auth`
   * needs a `secret` (or a `jwksUrl`) and `adminToken` is required, the same
   * on every node; `replication` is refused (PostgreSQL replicates itself).
   */
  store?: string;
  /** The PostgreSQL schema holding the store's tables (`--pg-schema`); default `tideline`. */
  pgSchema?: string;
  /** This node's name in `GET /admin/status` and the node registry (`--node-id`); default host-port. */
  nodeId?: string;
  /** Default 3000; 0 picks a free port (read it from the handle). */
  port?: number;
  /** Default 127.0.0.1 (this machine only); '0.0.0.0' listens on every interface. */
  host?: string;
  /**
   * Host names this server answers besides 127.0.0.1, localhost, `host` and
   * `replication.publicUrl`'s host (the CLI's `--allowed-hosts`): a request
   * or Socket.IO handshake naming any other `Host` gets 403 (DNS rebinding),
   * and an `Origin` must name one of them. `['*']` answers any host, for a
   * proxy that checks it. Default none.
   */
  allowedHosts?: readonly string[];
  /**
   * How client tokens are checked: `{ jwksUrl, issuer, audience, userClaim, rolesClaim }` for the app's
   * identity provider, or `{ secret }` (HS256). Default: HS256 with a secret made and kept in
   * `<dataDir>/secret.key`. `devLogin: true` mounts `POST /auth/dev-login` (development only).
   */
  auth?: AuthOptions;
  /** Bearer token for `/admin`; default: made and kept in `<dataDir>/admin.token`. */
  adminToken?: string;
  /** Documents written into a new, empty data directory (never into one that has data). */
  seed?: Seed;
  /** A built web app to serve from `/`; default none. */
  staticDir?: string;
  limits?: Partial<Limits>;
  /**
   * Bounds on one user's load (docs/ARCHITECTURE.md, "Limits and abuse"): push rates per user and per
   * connection, connections per user and per address, the hello timeout, the group commit's budget.
   * Each defaults to DEFAULT_FLOOD_LIMITS; 0 turns one off (but `rateBurstSeconds`).
   */
  floodLimits?: Partial<FloodLimits>;
  /** What one client session may hold: unsent bytes, page sizes, snapshots at once, the page ack timeout. */
  sessions?: Partial<SessionLimits>;
  /**
   * Delete the documents of collections the schema does not define. Without
   * it, such documents make the server refuse to start (see README, "Changing
   * your schema").
   */
  dropUnknownCollections?: boolean;
  replication?: ReplicationOptions;
  compaction?: CompactionOptions;
  /** Start-up notes (schema version changes, indexes made and dropped); default console.log. */
  log?: (line: string) => void;
}

export interface MutateOptions {
  /** Who the write runs as: a user (the same checks as that user's client) or `SYSTEM` (the default). */
  as?: ServerPrincipal;
  /** A retried write with the same key commits once and answers `duplicate` (see POST /admin/mutate). */
  idempotencyKey?: string;
}

/** One page of a query, in the words of `GET /query/<collection>`'s parameters. */
export interface QueryParams {
  /** `field:op:value`, ops `eq ne gt gte lt lte prefix`, on `id` and indexed fields. */
  filter?: string | string[];
  orderBy?: string;
  order?: 'asc' | 'desc';
  /** At most 1,000 (default 100). */
  limit?: number;
  /** The `nextCursor` of the previous page, with the same `orderBy` and `order`. */
  cursor?: string;
}

export interface QueryOptions {
  /** Whose scope is read: a user's, or `SYSTEM` (every document; the default). */
  as?: ServerPrincipal;
}

export interface QueryPage {
  /** The node's head when the page was read. */
  headLsn: number;
  docs: Doc[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

/** A running server. */
export interface TidelineServer {
  /** Where clients connect, e.g. http://127.0.0.1:3000. */
  readonly url: string;
  readonly port: number;
  /** 'primary' or 'replica'; changes on promotion and step down. */
  role(): Role;
  /**
   * Runs a mutator (built-in or the app's) through the primary's group commit:
   * access checks, document schemas and rules, fan-out to clients,
   * replication. Resolves with the outcome (`applied`, `duplicate`, `rejected`
   * with a code); rejects with a TidelineError when none can be given
   * (NOT_PRIMARY on a replica, BAD_REQUEST, TOO_LARGE, INTERNAL).
   */
  mutate(name: string, args: JsonValue, options?: MutateOptions): Promise<ServerWriteResult>;
  /**
   * Reads one page of a collection on this node; throws BAD_REQUEST for an
   * unknown collection or field, and NOT_READY (retryable) on a replica whose
   * primary refused its data (another cluster's backup, a diverged history:
   * see `GET /admin/status`).
   */
  query(collection: string, params?: QueryParams, options?: QueryOptions): Promise<QueryPage>;
  /** Stops accepting connections, closes sessions and the store; the port is free when it resolves. */
  close(): Promise<void>;
}

/** The configuration `startServer` takes, from these options and the defaults the CLI uses. */
export function serverConfigOf(options: CreateServerOptions): ServerConfig {
  const r = options.replication ?? {};
  const c = options.compaction ?? {};
  const { secret, staff, ...auth } = options.auth ?? {};
  const sessions = { ...DEFAULT_SESSION_LIMITS, ...options.sessions };
  const store = parseStoreSpec(options.store, options.pgSchema);
  if (store.kind === 'sqlite' && options.dataDir === undefined) {
    throw new TidelineError('BAD_REQUEST', 'createServer needs a dataDir for its SQLite store', {
      hint: "or a PostgreSQL store: store: 'postgres://…'",
    });
  }
  if (store.kind === 'postgres') {
    if (options.dataDir !== undefined) {
      throw new TidelineError('BAD_REQUEST', 'dataDir: a node on a PostgreSQL store keeps no files; leave it out');
    }
    const problem = pgNodeProblem(
      {
        replication: (['primaryUrl', 'peers', 'minSyncReplicas', 'restoreFrom'] as const)
          .filter((k) => r[k] !== undefined)
          .map((k) => `replication.${k}`),
        secret: secret ?? null,
        jwksUrl: auth.jwksUrl,
        adminToken: options.adminToken ?? null,
      },
      { secret: 'auth.secret (or auth.jwksUrl)', adminToken: 'adminToken' },
    );
    if (problem !== null) throw new TidelineError('BAD_REQUEST', problem);
  }
  return {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 3000,
    dataDir: options.dataDir ?? '',
    store,
    nodeId: parseNodeId(options.nodeId),
    seed: options.seed !== undefined,
    schemaModule: null,
    dropUnknownCollections: options.dropUnknownCollections ?? false,
    secret: secret ?? null,
    auth,
    adminToken: options.adminToken ?? null,
    staff: [...(staff ?? ['staff'])],
    staticDir: options.staticDir ?? null,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    floodLimits: { ...DEFAULT_FLOOD_LIMITS, ...options.floodLimits },
    maxSessionBufferBytes: sessions.maxBufferBytes,
    catchUp: {
      pageBytes: sessions.catchUpPageBytes,
      snapshotPageBytes: sessions.snapshotPageBytes,
      maxConcurrentSnapshots: sessions.maxConcurrentSnapshots,
      pageAckTimeoutMs: sessions.pageAckTimeoutMs,
    },
    maxLogChanges: c.maxLogChanges ?? 1_000_000,
    maxLogAgeMs: c.maxLogAgeMs ?? 7 * 24 * 3600 * 1000,
    compactionIntervalMs: c.intervalMs ?? 60_000,
    primaryUrl: r.primaryUrl ?? null,
    peers: [...(r.peers ?? [])],
    minSyncReplicas: r.minSyncReplicas ?? 0,
    clusterSecret: r.clusterSecret ?? null,
    restoreFrom: r.restoreFrom ?? null,
    publicUrl: r.publicUrl ?? null,
    ...(r.readWaitMs === undefined ? {} : { readWaitMs: r.readWaitMs }),
    ...(r.maxReadWaiters === undefined ? {} : { maxReadWaiters: r.maxReadWaiters }),
    allowedHosts: [...(options.allowedHosts ?? [])],
  };
}

/**
 * Starts a Tideline server for `options.schema` in this process: the same
 * server `tideline serve` runs. Rejects (and holds nothing open) when the
 * stored data does not fit the schema, the port is taken, or the data
 * directory is not a Tideline store.
 */
export async function createServer(options: CreateServerOptions): Promise<TidelineServer> {
  const running: RunningServer = await startServer(serverConfigOf(options), options.schema, {
    seed: options.seed ?? null,
    ...(options.log ? { log: options.log } : {}),
  });
  const { core, store } = running;
  return {
    url: running.url,
    port: running.port,
    role: () => running.role(),
    mutate: (name, args, mutateOptions = {}) =>
      core.submit(
        mutateOptions.as ?? SYSTEM,
        name,
        args,
        mutateOptions.idempotencyKey === undefined ? {} : { idempotencyKey: mutateOptions.idempotencyKey },
      ),
    query: async (collection, params = {}, queryOptions = {}) => {
      const refused = running.readsRefused();
      if (refused) throw refused;
      return queryPage(store, parseDocQuery(options.schema, collection, params, queryOptions.as ?? SYSTEM));
    },
    close: () => running.close(),
  };
}
