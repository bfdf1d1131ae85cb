import { join } from 'node:path';
import { systemClock } from '../shared/clock';
import { TidelineError } from '../shared/errors';
import type { AppSchema } from '../shared/schema/define-schema';
import { bearerUsers } from './auth/bearer';
import { ClusterNode } from './cluster/cluster-node';
import type { Role } from './cluster/cluster-node';
import { ReplicationHub } from './cluster/replication-hub';
import type { ServerConfig } from './config';
import { AppliedLsnWaiters, DEFAULT_MAX_READ_WAITERS, DEFAULT_READ_WAIT_MS } from './cluster/applied-lsn';
import { queryRoutes } from './http/query-route';
import type { QueryStore } from './http/query-route';
import { adminRoutes, clusterRoutes, readsRefused, refusedReplicaGuard } from './http/routes';
import { coreOptionsOf, nodeAuth, nodeFront } from './node-server';
import { loadOrCreateSecret } from './secrets';
import { checkStoredData } from './schema-check';
import { seedEmptyStore } from './seed';
import { defaultNodeId } from './store-spec';
import type { Seed } from './seed';
import { BACKUPS_DIR, backupLsn, backupTarget, restoreBackup, STORE_FILE } from './store/backup';
import { ensurePrivateDir } from './store/private-files';
import { openSqliteStore } from './store/sqlite-store';
import { asyncStoreOf } from './store/sync-store-adapter';
import { startCompaction } from './sync/compaction';
import { SyncCore } from './sync/sync-core';

export interface RunningServer {
  url: string;
  port: number;
  /** The node's current role (it changes on promotion and step down). */
  role(): Role;
  close(): Promise<void>;
  /** For `createServer`'s in-process writes and reads. */
  core: SyncCore;
  store: QueryStore;
  /** NOT_READY while this node is a replica whose primary refused its data; reads wait for the operator. */
  readsRefused(): TidelineError | null;
}

/** A start-up failure for the operator: the message and its hint, or the stack of an unexpected error. */
export function describeStartFailure(err: unknown): string {
  if (err instanceof TidelineError) return err.hint ? `${err.message}\n  ${err.hint}` : err.message;
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/** What a caller adds to the parsed configuration: the parts that are code, not flags. */
export interface StartOptions {
  /** Documents written into a new data directory (the storefront's demo data for `npm start`); none by default. */
  seed?: Seed | null;
  /** Where start-up notes go (schema changes, dropped indexes); default console.log. */
  log?: (line: string) => void;
}

/**
 * The composition root: wires the SQLite store, the sync core, replication,
 * Socket.IO and Express into one HTTP server, as a primary or a replica. The
 * CLI (`tideline serve`), the demo (`server/main.ts`) and `createServer` all
 * start a server here.
 */
export async function startServer(
  config: ServerConfig,
  schema: AppSchema,
  options: StartOptions = {},
): Promise<RunningServer> {
  if (config.store?.kind === 'postgres') {
    // Loaded only for PostgreSQL: a SQLite node (npm start) never loads the PostgreSQL client.
    const { startPgServer } = await import('./pg-app');
    return startPgServer(config, schema, options);
  }
  const clock = systemClock;
  const log = options.log ?? ((line: string) => console.log(line));
  // The store, its WAL, the secrets and the backups hold every document and client id: only our user may read them.
  const wasMode = ensurePrivateDir(config.dataDir);
  if (wasMode !== null) log(`made the data directory ${config.dataDir} 0700 (it was ${wasMode.toString(8)})`);
  // Tokens from the app's identity provider (JWKS), or HS256 with the secret (given, or kept in the data
  // directory). First, so that auth options that cannot work fail before anything is opened.
  const auth = nodeAuth(config, () =>
    loadOrCreateSecret(config.dataDir, 'secret.key', config.secret, 'TIDELINE_SECRET (auth.secret)'),
  );
  // Every secret is checked before anything is opened or restored.
  const adminToken = loadOrCreateSecret(
    config.dataDir,
    'admin.token',
    config.adminToken,
    'TIDELINE_ADMIN_TOKEN (adminToken)',
  );
  const clusterSecret = loadOrCreateSecret(
    config.dataDir,
    'cluster.key',
    config.clusterSecret,
    'TIDELINE_CLUSTER_SECRET (clusterSecret)',
  );
  if (config.restoreFrom) restoreBackup(config.restoreFrom, config.dataDir);
  const store = openSqliteStore(join(config.dataDir, STORE_FILE));
  let core: SyncCore | null = null;
  let hub: ReplicationHub | null = null;
  const readWaiters = new AppliedLsnWaiters({
    clock,
    maxWaiters: config.maxReadWaiters ?? DEFAULT_MAX_READ_WAITERS,
    head: () => store.meta().headLsn,
  });
  const node = new ClusterNode({
    onApplied: (head) => readWaiters.applied(head),
    store,
    clock,
    dataDir: config.dataDir,
    clusterSecret,
    // The primary we were told to follow is a peer too: once promoted, this node asks it for a higher term.
    peers: [...new Set([...config.peers, ...(config.primaryUrl ? [config.primaryUrl] : [])])],
    onStepDown: () => {
      core?.closeAll();
      hub?.disconnectAll();
    },
    log,
  });
  try {
    if (config.publicUrl) node.knowOwnUrl(config.publicUrl);
    if (config.port !== 0) node.knowOwnUrl(`http://${config.host}:${config.port}`);
    // Promotion is on record in the data directory and outranks the command line's --primary (see ClusterNode).
    await node.decideStartRole(config.primaryUrl);
    // Before any connection: a client must never be sent a collection its schema lacks.
    const report = checkStoredData(store, schema, {
      dropUnknownCollections: config.dropUnknownCollections,
      role: node.role,
      now: clock.now(),
    });
    for (const line of report.messages) log(line);
    if (options.seed && node.role === 'primary' && !config.restoreFrom) {
      seedEmptyStore(store, schema, options.seed, clock.now());
    }
  } catch (err) {
    node.stop();
    store.close();
    throw err;
  }

  hub = new ReplicationHub({
    store,
    clock,
    role: () => node.view(),
    onHigherTerm: () => node.stepDown(null),
    ...(config.catchUp ? { pageBytes: config.catchUp.pageBytes } : {}),
  });
  const replicationHub = hub;
  // The sync core, compaction and the HTTP reads share one adapter, so one queue orders them on the connection.
  const asyncStore = asyncStoreOf(store);
  core = new SyncCore({
    store: asyncStore,
    schema,
    clock,
    ...coreOptionsOf(config),
    role: () => node.view(),
    onCommit: (changes, outcomes) => replicationHub.onCommit(changes, outcomes),
    ...(config.minSyncReplicas > 0
      ? { replicated: (lsn: number) => replicationHub.waitFor(lsn, config.minSyncReplicas) }
      : {}),
  });
  const syncCore = core;
  const stopCompaction = startCompaction(core, asyncStore, clock, {
    maxLogChanges: config.maxLogChanges,
    maxLogAgeMs: config.maxLogAgeMs,
    intervalMs: config.compactionIntervalMs,
  });

  const startedAt = clock.now();
  // Known once listening (port 0 picks one); the status reads it later.
  let listeningPort = config.port;
  const deps = { store: asyncStore, core, adminToken, now: () => clock.now(), startedAt };
  const backupsDir = join(config.dataDir, BACKUPS_DIR);
  const bearer = bearerUsers(auth.verify);
  const front = nodeFront({
    config,
    core: syncCore,
    auth,
    health: () => ({ ok: true, role: node.role }),
    routes: (app) => {
      app.use(
        '/admin',
        adminRoutes({
          ...deps,
          nodeId: () => config.nodeId ?? defaultNodeId(listeningPort),
          node,
          hub: replicationHub,
          minSyncReplicas: config.minSyncReplicas,
          backup: async (path) => {
            const head = store.meta().headLsn;
            const dated = `tideline-${head}-${new Date(clock.now()).toISOString().replace(/[:.]/g, '-')}.db`;
            // Validated before anything is written: confined to <data>/backups, never over a file, never the store.
            const out = backupTarget(backupsDir, path, dated, [store.path]);
            ensurePrivateDir(backupsDir);
            await store.backupTo(out);
            return { path: out, lsn: backupLsn(out) };
          },
        }),
      );
      app.use('/cluster', clusterRoutes(node, clusterSecret));
      app.use(
        '/query',
        refusedReplicaGuard(node),
        queryRoutes({
          store: asyncStore,
          schema,
          adminToken,
          authenticate: bearer.middleware,
          userOf: bearer.userOf,
          freshness: {
            role: () => node.role,
            primaryUrl: () => node.primaryUrl,
            waiters: readWaiters,
            maxWaitMs: config.readWaitMs ?? DEFAULT_READ_WAIT_MS,
          },
        }),
      );
    },
  });
  const io = front.io;
  replicationHub.attach(io.of('/replication'), clusterSecret);

  let port: number;
  try {
    port = await front.listen();
  } catch (err) {
    stopCompaction();
    node.stop();
    store.close();
    throw err;
  }
  listeningPort = port;
  const url = `http://${config.host}:${port}`;
  node.selfUrl = config.publicUrl ?? url;
  node.knowOwnUrl(url);
  if (node.role === 'replica' && node.primaryUrl) node.follow(node.primaryUrl);
  else node.watchPeers();
  return {
    url,
    port,
    core: syncCore,
    store: asyncStore,
    role: () => node.role,
    readsRefused: () => readsRefused(node),
    async close() {
      stopCompaction();
      readWaiters.close();
      node.stop();
      await io.close();
      store.close();
    },
  };
}
