import { parseArgs } from 'node:util';
import { DEFAULT_LIMITS } from '../shared/protocol/limits';
import type { Limits } from '../shared/protocol/limits';
import { AUTH_FLAGS, AUTH_HELP, authConfig } from './auth/auth-flags';
import type { AuthConfig } from './auth/auth-flags';
import { DEFAULT_MAX_READ_WAITERS, DEFAULT_READ_WAIT_MS } from './cluster/applied-lsn';
import { DEFAULT_MAX_SESSION_BUFFER_BYTES, DEFAULT_PAGE_ACK_TIMEOUT_MS } from './sync/socket-sync';
import { DEFAULT_MAX_CONCURRENT_SNAPSHOTS, DEFAULT_PAGE_BYTES, DEFAULT_SNAPSHOT_PAGE_BYTES } from './sync/sync-core';
import { DEFAULT_FLOOD_LIMITS } from './sync/flood-limits';
import type { FloodLimits } from './sync/flood-limits';
import { TidelineError } from '../shared/errors';
import { DEFAULT_PG_SCHEMA, parseNodeId, parseStoreSpec, pgNodeProblem } from './store-spec';
import type { StoreSpec } from './store-spec';

export interface ServerConfig {
  host: string;
  /** 0 picks a free port; the chosen one is printed. */
  port: number;
  dataDir: string;
  /** Seed the demo schema's data into an empty store (`server/main.ts` only; a custom schema has none). */
  seed: boolean;
  /** The app's schema module (`tideline serve --schema`); null for the demo, which serves the storefront. */
  schemaModule: string | null;
  /** Delete the documents of collections the schema does not define, instead of refusing to start. */
  dropUnknownCollections: boolean;
  /** Client token secret; when absent, one is made and kept in `<data>/secret.key`. */
  secret: string | null;
  /** Bearer token for /admin; when absent, one is made and kept in `<data>/admin.token`. */
  adminToken: string | null;
  /** User names that the development login gives the `staff` role. */
  staff: string[];
  /** Built web app to serve, if it exists; null serves none. */
  staticDir: string | null;
  limits: Limits;
  /**
   * A session with more unsent bytes than this is closed (RATE_LIMITED, retryable): its client stopped
   * reading. Absent: DEFAULT_MAX_SESSION_BUFFER_BYTES (`createServer` does not take it).
   */
  maxSessionBufferBytes?: number;
  /** Snapshots and catch-up pages; absent fields take the sync core's and socket layer's defaults. */
  catchUp?: CatchUpConfig;
  /** Push rate limits, connection limits, the hello timeout and the group commit's budget; absent: DEFAULT_FLOOD_LIMITS. */
  floodLimits?: FloodLimits;
  /** Automatic compaction keeps the log under this many changes. */
  maxLogChanges: number;
  /** ... and drops changes older than this. */
  maxLogAgeMs: number;
  compactionIntervalMs: number;
  /** The longest a replica holds a `/query?minLsn=` for its applied LSN to reach it (default DEFAULT_READ_WAIT_MS). */
  readWaitMs?: number;
  /** How many such queries wait at once; more are refused RATE_LIMITED (default DEFAULT_MAX_READ_WAITERS). */
  maxReadWaiters?: number;
  /** Follow this primary as a replica; null runs as the primary. */
  primaryUrl: string | null;
  /** Other nodes, asked for a primary with a higher term (failover). */
  peers: string[];
  /** Client acks wait until this many replicas have applied the change. */
  minSyncReplicas: number;
  /** Authenticates replicas on /replication; when absent, kept in `<data>/cluster.key`. */
  clusterSecret: string | null;
  /** Start from this backup file (into an empty data directory), then catch up as a replica. */
  restoreFrom: string | null;
  /** How other nodes and clients reach this one; defaults to http://host:port. */
  publicUrl: string | null;
  /** Host names answered besides 127.0.0.1, localhost, --host and the public URL's host; `*` answers any (default none). */
  allowedHosts?: string[];
  /** Client tokens: HS256 with `secret` unless `auth.jwksUrl` is set; the dev login is off unless `auth.devLogin`. */
  auth: AuthConfig;
  /** The store (`--store`); absent: SQLite in `dataDir`. */
  store?: StoreSpec;
  /** This node's name in the status and, on PostgreSQL, the node registry (`--node-id`); absent: host-port. */
  nodeId?: string | null;
}

/** Bounds on what catching a client up may hold (`--catch-up-page-bytes` and the others below). */
export interface CatchUpConfig {
  /** Bytes per catch-up page; a single mutation over it comes whole on its own page. */
  pageBytes: number;
  /** Bytes per snapshot page; a single document over it comes alone. */
  snapshotPageBytes: number;
  /** Snapshots streamed at once; the others wait their turn. */
  maxConcurrentSnapshots: number;
  /** A catch-up or snapshot page not acked within this closes the session (RATE_LIMITED, retryable). */
  pageAckTimeoutMs: number;
}
/** Flood bounds (issue 9): a push over a rate, or a connection over a count, gets RATE_LIMITED. 0 = off. */
const FLOOD_FLAGS = {
  'rate-user-mutations': ['rateUserMutations', 'mutations/s one user may push, all its connections together'],
  'rate-user-bytes': ['rateUserBytes', 'push bytes/s one user may send'],
  'rate-conn-mutations': ['rateConnMutations', 'mutations/s one connection may push'],
  'rate-conn-bytes': ['rateConnBytes', 'push bytes/s one connection may send'],
  'rate-burst-seconds': ['rateBurstSeconds', 'each rate may be used this many seconds ahead at once (below 1: 1)'],
  'max-user-connections': ['maxConnectionsPerUser', 'connections past hello per user'],
  'max-address-connections': ['maxConnectionsPerAddress', 'sync connections per remote address'],
  'hello-timeout-ms': ['helloTimeoutMs', 'close a connection that has not said hello by then'],
  'max-commit-mutations': ['maxCommitMutations', 'mutations per group commit (at least one push goes)'],
  'max-commit-bytes': ['maxCommitBytes', 'push bytes per group commit'],
} as const satisfies Record<string, readonly [keyof FloodLimits, string]>;

const FLOOD_HELP = Object.entries(FLOOD_FLAGS)
  .map(([flag, [key, what]]) => {
    const off = key === 'rateBurstSeconds' ? '' : '; 0 off';
    return `  --${`${flag} N`.padEnd(24)}  ${what} (default ${DEFAULT_FLOOD_LIMITS[key]}${off})`;
  })
  .join('\n');

/** The options every way of starting a server takes (the demo and `tideline serve`). */
const OPTIONS_HELP = `  --host HOST                 listen address (default 127.0.0.1)
  --port N                    port, 0 for any free one (default 3000, or $PORT)
  --data DIR                  data directory (default ./data)
  --static DIR                built web app to serve (default: ./dist for the demo, none for serve)
  --drop-unknown-collections  delete the documents of collections the schema no longer defines
                              (without it the server refuses to start and names them)
  --staff NAMES               comma-separated user names that the dev login gives the staff role (default staff)
  --max-mutations-per-push N  (default ${DEFAULT_LIMITS.maxMutationsPerPush})
  --max-doc-bytes N           (default ${DEFAULT_LIMITS.maxDocBytes})
  --max-message-bytes N       (default ${DEFAULT_LIMITS.maxMessageBytes})
  --max-session-buffer-bytes N  close a session whose client leaves more unsent (default ${DEFAULT_MAX_SESSION_BUFFER_BYTES})
  --catch-up-page-bytes N     bytes per catch-up page; one larger mutation comes alone (default ${DEFAULT_PAGE_BYTES})
  --snapshot-page-bytes N     bytes per snapshot page; one larger document comes alone (default ${DEFAULT_SNAPSHOT_PAGE_BYTES})
  --max-concurrent-snapshots N  snapshots streamed at once; others wait their turn (default ${DEFAULT_MAX_CONCURRENT_SNAPSHOTS})
  --page-ack-timeout-ms N     close a session that leaves a catch-up or snapshot page unacked this long
                              (default ${DEFAULT_PAGE_ACK_TIMEOUT_MS})
${FLOOD_HELP}
  --max-log-changes N         compact when the log holds more (default 1000000)
  --max-log-age-ms N          compact changes older than this (default 7 days)
  --read-wait-ms N            longest a replica holds a /query?minLsn= until it has applied that LSN,
                              then answers 503 NOT_READY (default ${DEFAULT_READ_WAIT_MS})
  --max-read-waiters N        queries waiting for minLsn at once; more get 429 RATE_LIMITED (default ${DEFAULT_MAX_READ_WAITERS})
  --role primary|replica      (default primary; --primary implies replica)
  --primary URL               follow this primary as a read-only replica (a node whose data
                              says it was promoted to its current term stays primary instead)
  --peers URLS                comma-separated other nodes, to find a primary with a higher term
  --min-sync-replicas N       client acks wait for N replicas to apply a change (default 0)
  --restore FILE              start from a backup (empty data dir), then catch up as a replica
  --public-url URL            how others reach this node (default http://HOST:PORT)
  --store URL                 postgres://… or postgresql://…: share one PostgreSQL database with other
                              nodes, every node a writer (default: the embedded SQLite store in --data).
                              Needs TIDELINE_SECRET (or --auth-jwks-url) and TIDELINE_ADMIN_TOKEN, the same
                              on every node; refuses --data, --role replica, --primary, --peers,
                              --min-sync-replicas and --restore ($TIDELINE_STORE)
  --pg-schema NAME            the PostgreSQL schema holding the store's tables, shared by the nodes of
                              one cluster (default ${DEFAULT_PG_SCHEMA}; $TIDELINE_PG_SCHEMA)
  --node-id NAME              this node's name in /admin/status and the PostgreSQL node registry
                              (default HOSTNAME-PORT; $TIDELINE_NODE_ID)
  --allowed-hosts NAMES       comma-separated host names answered besides 127.0.0.1, localhost, --host
                              and the public URL's host; others get 403 (DNS rebinding); * answers any
${AUTH_HELP}
Environment: TIDELINE_SECRET (client token secret, the same on every node), TIDELINE_ADMIN_TOKEN
(admin bearer token), TIDELINE_CLUSTER_SECRET (replication secret, the same on every node), TIDELINE_STORE,
TIDELINE_PG_SCHEMA and TIDELINE_NODE_ID (--store, --pg-schema and --node-id when not given).`;

/** Usage of `server/main.ts`, the demo: the storefront schema and its data. */
const HELP = `Usage: node --import tsx server/main.ts [options]   (npm run dev -- [options])
Serves the demo storefront (its schema and demo data). To serve your own schema: tideline serve --help.
  --no-seed                   do not seed the demo data into an empty store
${OPTIONS_HELP}`;

function int(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${value}'`);
  return n;
}

/** A bound that 0 would turn into a stop (no page, no snapshot, no wait): at least 1. */
function positive(value: string | undefined, fallback: number, name: string): number {
  const n = int(value, fallback, name);
  if (n < 1) throw new Error(`--${name} must be at least 1, got '${value}'`);
  return n;
}

/** Defaults that differ between the demo and `tideline serve`. */
export interface ConfigDefaults {
  staticDir: string | null;
}

export function parseConfig(
  argv: string[],
  env: NodeJS.ProcessEnv,
  defaults: ConfigDefaults = { staticDir: './dist' },
): ServerConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean' },
      host: { type: 'string' },
      port: { type: 'string' },
      data: { type: 'string' },
      'no-seed': { type: 'boolean' },
      schema: { type: 'string' },
      'drop-unknown-collections': { type: 'boolean' },
      staff: { type: 'string' },
      static: { type: 'string' },
      'max-mutations-per-push': { type: 'string' },
      'max-doc-bytes': { type: 'string' },
      'max-message-bytes': { type: 'string' },
      'max-session-buffer-bytes': { type: 'string' },
      'catch-up-page-bytes': { type: 'string' },
      'snapshot-page-bytes': { type: 'string' },
      'max-concurrent-snapshots': { type: 'string' },
      'page-ack-timeout-ms': { type: 'string' },
      ...floodOptions(),
      'max-log-changes': { type: 'string' },
      'max-log-age-ms': { type: 'string' },
      'compaction-interval-ms': { type: 'string' },
      'read-wait-ms': { type: 'string' },
      'max-read-waiters': { type: 'string' },
      role: { type: 'string' },
      primary: { type: 'string' },
      peers: { type: 'string' },
      'min-sync-replicas': { type: 'string' },
      restore: { type: 'string' },
      'public-url': { type: 'string' },
      'allowed-hosts': { type: 'string' },
      store: { type: 'string' },
      'pg-schema': { type: 'string' },
      'node-id': { type: 'string' },
      ...AUTH_FLAGS,
    },
    strict: true,
  });
  if (values.help) return 'help';
  const role = values.role ?? (values.primary ? 'replica' : 'primary');
  if (role !== 'primary' && role !== 'replica') throw new Error(`--role must be primary or replica, got '${role}'`);
  if (role === 'replica' && !values.primary) throw new Error('a replica needs --primary URL');
  if (values.restore && !values.primary) throw new Error('--restore needs --primary URL to catch up from');
  const store = usage(() =>
    parseStoreSpec(
      values.store ?? (env['TIDELINE_STORE'] || undefined),
      values['pg-schema'] ?? (env['TIDELINE_PG_SCHEMA'] || undefined),
    ),
  );
  const nodeId = usage(() => parseNodeId(values['node-id'] ?? (env['TIDELINE_NODE_ID'] || undefined)));
  const auth = authConfig(values, env);
  const secret = env['TIDELINE_SECRET'] ?? null;
  const adminToken = env['TIDELINE_ADMIN_TOKEN'] ?? null;
  if (store.kind === 'postgres') {
    if (values.data !== undefined) {
      throw new Error(
        '--data: a node on a PostgreSQL store keeps no files (everything is in the database); leave it out',
      );
    }
    const given = (flag: string, value: unknown): string[] => (value === undefined ? [] : [flag]);
    const problem = pgNodeProblem(
      {
        replication: [
          ...(values.role === 'replica' ? ['--role replica'] : []),
          ...given('--primary', values.primary),
          ...given('--peers', values.peers),
          ...given('--min-sync-replicas', values['min-sync-replicas']),
          ...given('--restore', values.restore),
        ],
        secret,
        jwksUrl: auth.jwksUrl,
        adminToken,
      },
      { secret: 'TIDELINE_SECRET (or --auth-jwks-url)', adminToken: 'TIDELINE_ADMIN_TOKEN' },
    );
    if (problem !== null) throw new Error(problem);
  }
  return {
    host: values.host ?? '127.0.0.1',
    port: int(values.port ?? env['PORT'], 3000, 'port'),
    dataDir: values.data ?? './data',
    seed: !values['no-seed'],
    schemaModule: values.schema ?? null,
    dropUnknownCollections: values['drop-unknown-collections'] ?? false,
    secret,
    adminToken,
    staff: (values.staff ?? 'staff').split(',').filter((s) => s.length > 0),
    staticDir: values.static ?? defaults.staticDir,
    limits: {
      maxMutationsPerPush: int(
        values['max-mutations-per-push'],
        DEFAULT_LIMITS.maxMutationsPerPush,
        'max-mutations-per-push',
      ),
      maxDocBytes: int(values['max-doc-bytes'], DEFAULT_LIMITS.maxDocBytes, 'max-doc-bytes'),
      maxMessageBytes: int(values['max-message-bytes'], DEFAULT_LIMITS.maxMessageBytes, 'max-message-bytes'),
    },
    maxSessionBufferBytes: int(
      values['max-session-buffer-bytes'],
      DEFAULT_MAX_SESSION_BUFFER_BYTES,
      'max-session-buffer-bytes',
    ),
    catchUp: {
      pageBytes: positive(values['catch-up-page-bytes'], DEFAULT_PAGE_BYTES, 'catch-up-page-bytes'),
      snapshotPageBytes: positive(values['snapshot-page-bytes'], DEFAULT_SNAPSHOT_PAGE_BYTES, 'snapshot-page-bytes'),
      maxConcurrentSnapshots: positive(
        values['max-concurrent-snapshots'],
        DEFAULT_MAX_CONCURRENT_SNAPSHOTS,
        'max-concurrent-snapshots',
      ),
      pageAckTimeoutMs: positive(values['page-ack-timeout-ms'], DEFAULT_PAGE_ACK_TIMEOUT_MS, 'page-ack-timeout-ms'),
    },
    floodLimits: floodLimitsOf(values),
    maxLogChanges: int(values['max-log-changes'], 1_000_000, 'max-log-changes'),
    maxLogAgeMs: int(values['max-log-age-ms'], 7 * 24 * 3600 * 1000, 'max-log-age-ms'),
    compactionIntervalMs: int(values['compaction-interval-ms'], 60_000, 'compaction-interval-ms'),
    readWaitMs: int(values['read-wait-ms'], DEFAULT_READ_WAIT_MS, 'read-wait-ms'),
    maxReadWaiters: int(values['max-read-waiters'], DEFAULT_MAX_READ_WAITERS, 'max-read-waiters'),
    primaryUrl: role === 'replica' ? (values.primary ?? null) : null,
    peers: (values.peers ?? '').split(',').filter((s) => s.length > 0),
    minSyncReplicas: int(values['min-sync-replicas'], 0, 'min-sync-replicas'),
    clusterSecret: env['TIDELINE_CLUSTER_SECRET'] ?? null,
    restoreFrom: values.restore ?? null,
    publicUrl: values['public-url'] ?? null,
    allowedHosts: (values['allowed-hosts'] ?? '').split(',').filter((s) => s.length > 0),
    auth,
    store,
    nodeId,
  };
}

/** A TidelineError from a parser as a usage error: its message and hint in one line. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof TidelineError)
      throw new Error(err.hint ? `${err.message} (${err.hint})` : err.message, { cause: err });
    throw err;
  }
}

function floodOptions(): Record<keyof typeof FLOOD_FLAGS, { type: 'string' }> {
  const options = {} as Record<keyof typeof FLOOD_FLAGS, { type: 'string' }>;
  for (const flag of Object.keys(FLOOD_FLAGS) as Array<keyof typeof FLOOD_FLAGS>) options[flag] = { type: 'string' };
  return options;
}

function floodLimitsOf(values: Partial<Record<string, unknown>>): FloodLimits {
  const limits = { ...DEFAULT_FLOOD_LIMITS };
  for (const [flag, [key]] of Object.entries(FLOOD_FLAGS)) {
    const value = values[flag];
    limits[key] = int(typeof value === 'string' ? value : undefined, DEFAULT_FLOOD_LIMITS[key], flag);
  }
  return limits;
}

export { HELP, OPTIONS_HELP };
