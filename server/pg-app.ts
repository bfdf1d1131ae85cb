import { systemClock } from '../shared/clock';
import { TidelineError } from '../shared/errors';
import type { AppSchema } from '../shared/schema/define-schema';
import type { RunningServer, StartOptions } from './app';
import { bearerUsers } from './auth/bearer';
import type { ServerConfig } from './config';
import { queryRoutes } from './http/query-route';
import { adminApi } from './http/routes';
import { coreOptionsOf, nodeAuth, nodeFront } from './node-server';
import { checkPgStoredData } from './pg-schema-check';
import { givenSecret } from './secrets';
import { seedEmptyAsyncStore } from './seed';
import { defaultNodeId, redactUrl } from './store-spec';
import { openPgStore } from './store/pg-store';
import type { PgStore } from './store/pg-store';
import type { ClusterNodeRow } from './store/pg-nodes';
import { startCompaction } from './sync/compaction';
import { SyncCore } from './sync/sync-core';

/** How often a node says in the registry that it is alive, with its session count. */
export const HEARTBEAT_MS = 2_000;
/** How often a node reads the shared log without being woken (see the poll in startPgServer). */
const TAIL_POLL_MS = 1000;

/** A node whose last heartbeat is older than this is left out of the status (five beats missed). */
export const STALE_AFTER_MS = 10_000;

/**
 * The composition root of a node on PostgreSQL (`--store postgres://…`):
 * one of any number of stateless nodes sharing the store's schema, each a
 * writer. It opens the PgStore, checks the stored data against the app
 * schema and seeds an empty store if asked, runs a SyncCore on the shared
 * log (`sharedLog`: every commit, its own and other nodes', reaches its
 * sessions by reading the log in LSN order, woken by NOTIFY), and serves the
 * same front as a SQLite node (node-server.ts): `/sync`, `/query`,
 * `/admin`. There is no replication, role or failover of its own:
 * PostgreSQL's replication keeps the data. It beats in the node registry
 * every `HEARTBEAT_MS` and leaves it on a clean close, so `GET
 * /admin/status` on any node shows the cluster.
 */
export async function startPgServer(
  config: ServerConfig,
  schema: AppSchema,
  options: StartOptions = {},
): Promise<RunningServer> {
  const spec = config.store;
  if (spec?.kind !== 'postgres') throw new TidelineError('INTERNAL', 'startPgServer needs a postgres store');
  const clock = systemClock;
  const log = options.log ?? ((line: string) => console.log(line));
  // Nodes share clients and the admin API, so both secrets are given, the same on every node, never made here.
  const auth = nodeAuth(config, () => givenSecret(config.secret, 'TIDELINE_SECRET (auth.secret)'));
  const adminToken = givenSecret(config.adminToken, 'TIDELINE_ADMIN_TOKEN (adminToken)');
  const store = await openPgStore({ url: spec.url, schema: spec.pgSchema });
  try {
    // Before any connection: a client must never be sent a collection its schema lacks.
    const report = await checkPgStoredData(store, schema, {
      dropUnknownCollections: config.dropUnknownCollections,
      now: clock.now(),
    });
    for (const line of report.messages) log(line);
    if (options.seed) {
      const seeded = await seedEmptyAsyncStore(store, schema, options.seed, clock.now());
      if (seeded > 0) log(`seeded ${seeded} documents into the empty store`);
    }
  } catch (err) {
    await store.close();
    throw err;
  }

  const core = new SyncCore({ store, schema, clock, ...coreOptionsOf(config), sharedLog: true });
  const stopped: Array<() => unknown> = [];
  const shutDown = async (): Promise<void> => {
    for (const stop of stopped.splice(0).reverse()) await stop();
  };
  stopped.push(() => store.close());
  try {
    await core.start();
    stopped.push(() => core.close());
    // Other nodes' commits: NOTIFY wakes the core, which reads the shared log from where it is.
    const unlisten = await store.onCommit(() => core.wake());
    stopped.push(unlisten);
    // NOTIFY is only a hint: one lost on the way (a pooler between, a LISTEN connection that dropped before
    // PgStore noticed) leaves this node's live sessions behind until the next commit anywhere; a read of
    // the log now and then bounds that to TAIL_POLL_MS. It costs one indexed query when nothing is new.
    const poll = setInterval(() => core.wake(), TAIL_POLL_MS);
    poll.unref();
    stopped.push(() => clearInterval(poll));
    stopped.push(
      startCompaction(
        core,
        store,
        clock,
        {
          maxLogChanges: config.maxLogChanges,
          maxLogAgeMs: config.maxLogAgeMs,
          intervalMs: config.compactionIntervalMs,
        },
        (err) => log(`compaction failed (next try in ${config.compactionIntervalMs} ms): ${messageOf(err)}`),
      ),
    );
  } catch (err) {
    await shutDown();
    throw err;
  }

  const startedAt = clock.now();
  const self = { nodeId: config.nodeId ?? null, url: config.publicUrl ?? '', duplicate: false };
  const nodeId = (): string => self.nodeId ?? '';
  const bearer = bearerUsers(auth.verify);
  const front = nodeFront({
    config,
    core,
    auth,
    // The database answers, or the balancer should send clients elsewhere.
    health: async () => {
      await store.meta();
      return { ok: true, store: 'postgres', nodeId: nodeId() };
    },
    routes: (app) => {
      app.use(
        '/admin',
        adminApi({
          adminToken,
          core,
          status: () => pgNodeStatus({ store, core, self, startedAt, now: () => clock.now(), spec }),
          notPrimary: () => null,
          missing: {
            backup:
              'a node on PostgreSQL takes no backups: back the database up with pg_dump or point-in-time recovery (docs/deploy.md)',
            promote: 'every node on PostgreSQL takes writes: there is no primary to promote',
          },
        }),
      );
      // No freshness: the head a node reads is the cluster's, so minLsn is answered at once (query-route.ts).
      app.use(
        '/query',
        queryRoutes({ store, schema, adminToken, authenticate: bearer.middleware, userOf: bearer.userOf }),
      );
    },
  });
  stopped.push(() => front.io.close());
  let port: number;
  try {
    port = await front.listen();
  } catch (err) {
    stopped.pop();
    await shutDown();
    throw err;
  }
  const url = `http://${config.host}:${port}`;
  self.nodeId ??= defaultNodeId(port);
  self.url = config.publicUrl ?? url;
  const heartbeat = startHeartbeat(store, self, () => core.connectedClients, log);
  try {
    // Listed before the first client can ask for the status.
    await heartbeat.beat();
  } catch (err) {
    heartbeat.stop();
    await shutDown();
    throw err;
  }
  log(
    `node ${self.nodeId} on PostgreSQL ${redactUrl(spec.url)} (schema ${spec.pgSchema}), ${(await store.clusterNodes(STALE_AFTER_MS)).length} node(s) live`,
  );
  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    core,
    store,
    role: () => 'primary',
    readsRefused: () => null,
    close() {
      closing ??= (async () => {
        heartbeat.stop();
        await heartbeat.idle();
        // A clean stop leaves the registry at once instead of going stale.
        await store.leave(nodeId()).catch(() => undefined);
        await shutDown();
      })();
      return closing;
    },
  };
}

interface Self {
  nodeId: string | null;
  url: string;
  /** Another live process beats for this node id (see PgStore.heartbeat). */
  duplicate: boolean;
}

/**
 * Beats every HEARTBEAT_MS. A failed beat (the database away) is logged
 * once per outage and retried at the next tick; the node keeps serving what
 * it can.
 */
function startHeartbeat(
  store: PgStore,
  self: Self,
  sessions: () => number,
  log: (line: string) => void,
): { beat(): Promise<void>; stop(): void; idle(): Promise<void> } {
  let failing = false;
  let inFlight: Promise<void> = Promise.resolve();
  const beat = async (): Promise<void> => {
    const { duplicate } = await store.heartbeat({ nodeId: self.nodeId ?? '', url: self.url, sessions: sessions() });
    if (duplicate && !self.duplicate) {
      log(`WARNING: another live node uses --node-id ${self.nodeId}: give each node its own`);
    }
    self.duplicate = duplicate;
  };
  const timer = setInterval(() => {
    inFlight = beat().then(
      () => {
        if (failing) log('heartbeat: the node registry answers again');
        failing = false;
      },
      (err: unknown) => {
        if (!failing) log(`heartbeat failed (retrying every ${HEARTBEAT_MS} ms): ${messageOf(err)}`);
        failing = true;
      },
    );
  }, HEARTBEAT_MS);
  timer.unref();
  return { beat, stop: () => clearInterval(timer), idle: () => inFlight };
}

/** `GET /admin/status` of a node on PostgreSQL: the fields are listed in docs/deploy.md, "What to monitor". */
async function pgNodeStatus(deps: {
  store: PgStore;
  core: SyncCore;
  self: Self;
  startedAt: number;
  now: () => number;
  spec: { url: string; pgSchema: string };
}): Promise<object> {
  const { store } = deps;
  const [meta, log, clusterId, terms, nodes] = await Promise.all([
    store.meta(),
    store.logStats(),
    store.clusterId(),
    store.terms(),
    store.clusterNodes(STALE_AFTER_MS),
  ]);
  return {
    store: 'postgres',
    nodeId: deps.self.nodeId,
    url: deps.self.url,
    pgSchema: deps.spec.pgSchema,
    database: redactUrl(deps.spec.url),
    serverId: meta.serverId,
    clusterId,
    term: meta.term,
    terms,
    headLsn: meta.headLsn,
    horizon: meta.horizon,
    logChanges: log.count,
    connectedClients: deps.core.connectedClients,
    cluster: {
      nodes: nodes.map((n: ClusterNodeRow) => ({
        nodeId: n.nodeId,
        url: n.url,
        sessions: n.sessions,
        startedAt: n.startedAt,
        seenAt: n.seenAt,
        ageMs: n.ageMs,
      })),
      sessions: nodes.reduce((sum, n) => sum + n.sessions, 0),
      staleAfterMs: STALE_AFTER_MS,
      duplicateNodeId: deps.self.duplicate,
    },
    uptimeMs: deps.now() - deps.startedAt,
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
