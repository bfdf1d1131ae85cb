import { MemoryStore } from '../../server/store/memory-store';
import type { AsyncStore } from '../../server/store/async-store';
import { SyncCore } from '../../server/sync/sync-core';
import type { SyncCoreOptions } from '../../server/sync/sync-core';
import { storeSchema } from '../../shared/apps/store';
import { TidelineError } from '../../shared/errors';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import { checkEndState } from './checks';
import { Rng } from './random';
import { SimClient } from './sim-client';
import { HEALTHY, SimNetwork } from './sim-network';
import type { Delivered, NetworkFaults, NetworkStats } from './sim-network';
import { ServerHistory } from './server-history';
import type { LoggedOutcome } from './server-history';
import { SimNodes } from './sim-nodes';
import type { WakeFaults } from './sim-nodes';
import { SimReplica } from './sim-replica';
import { NO_LOCAL_FAULTS } from './observed-local-store';
import type { LocalFaults } from './observed-local-store';
import type { PathCounts } from './sim-client';
import { COUNTERS, NOTE_IDS, PRODUCTS, randomOp } from './workload';
import { drainMicrotasks, VirtualClock } from './virtual-clock';

/**
 * `single`: one primary, sometimes killed and restarted on its data.
 * `failover`: a primary with one synchronous replica (`minSyncReplicas = 1`)
 * that receives its log; the primary is lost and the replica promoted.
 * `two-nodes`: two nodes (`sharedLog`) over one store, as on PostgreSQL;
 * clients move between them, and a node may be killed and another started.
 */
export type SimMode = 'single' | 'failover' | 'two-nodes';
export const SIM_MODES: readonly SimMode[] = ['single', 'failover', 'two-nodes'];

export interface SimConfig {
  seed: number;
  mode?: SimMode;
  clients?: number;
  mutationsPerClient?: number;
  /** Virtual time over which the mutations and faults are spread. */
  workloadMs?: number;
  /** Keep a trace of every message and state change. */
  trace?: boolean;
  /** `two-nodes`: how often a node behind the head reads the log (default 1000, `TAIL_POLL_MS`); 0: never. */
  nodePollMs?: number;
  /**
   * `two-nodes`: compactions go no further than every live node has fanned
   * out. Off (the default), a node compacts up to what it alone has fanned
   * out, as `startCompaction` on each PostgreSQL node does.
   */
  boundCompaction?: boolean;
}

export interface SimStats {
  steps: number;
  virtualMs: number;
  mutations: number;
  rejected: number;
  snapshots: number;
  compactions: number;
  restarts: number;
  serverRestarts: number;
  failovers: number;
  clientCrashes: number;
  localFailures: number;
  localTransactions: number;
  /** How often the paths the checks are about ran. */
  paths: PathCounts & { dedupe: number };
  network: NetworkStats;
}

export interface SimResult {
  seed: number;
  mode: SimMode;
  /** Broken invariants, each starting with `seed N:`. Empty when the run passed. */
  failures: string[];
  stats: SimStats;
  trace: string[];
}

const START_MS = 1_700_000_000_000;
/** After the network heals, everything must be idle within this much virtual time. */
const SETTLE_LIMIT_MS = 10 * 60_000;
const MAX_STEPS = 200_000;
export const SIM_COLLECTIONS = Object.keys(storeSchema.collections);
const STAFF = new Set(['sam']);
const OWNER_ONLY = new Set(
  Object.entries(storeSchema.collections)
    .filter(([, d]) => d.read === 'owner')
    .map(([c]) => c),
);

/**
 * One seeded run: a primary (`SyncCore` on a `MemoryStore`), N client engines
 * on `MemoryLocalStore`s, and a `SimNetwork` between them, all on one virtual
 * clock; in failover mode also a replica that follows the primary's log and
 * is promoted when the primary is lost. A random workload and random faults
 * (network cuts, lost acks, duplicates, lost live messages, retransmitted
 * pushes, local transactions that fail or crash the tab, tab crashes between
 * transactions, compactions, server kills) run for `workloadMs`; then
 * everything heals and the run goes on until no timer is left, and the
 * checks look at the end state. Checks that watch the run as it goes
 * (after every local transaction: monotonic reads and what the user sees;
 * scope; the commit stream) report through the same list.
 */
export async function runSimulation(config: SimConfig): Promise<SimResult> {
  const { seed } = config;
  const mode = config.mode ?? 'single';
  const nClients = config.clients ?? 3;
  const perClient = config.mutationsPerClient ?? 10;
  const workloadMs = config.workloadMs ?? 4_000;
  const trace: string[] = [];
  const problems: string[] = [];
  const clock = new VirtualClock(START_MS);
  const log = config.trace ? (line: () => string) => void trace.push(line()) : () => undefined;
  const fail = (message: string): void => {
    problems.push(message);
    log(() => `!!! ${message}`);
  };

  const rng = new Rng(seed);
  const workRng = rng.fork();
  const history = new ServerHistory(SIM_COLLECTIONS);
  let store = new MemoryStore({ serverId: `sim-primary-${seed}` });
  const initialStock = seedData(store, history, rng, clock.now());

  // In failover mode a real replica follows the log, and acks and fan-out wait until it has each commit.
  // In single mode some runs make them wait for a simulated replica that is only a delay.
  const replica =
    mode === 'failover'
      ? new SimReplica(
          store,
          new MemoryStore({ serverId: `sim-replica-${seed}` }),
          clock,
          rng.fork(),
          rng.pick([5, 30, 300]),
        )
      : null;
  replica?.store.importSnapshot(store.exportSnapshot());
  const replicaLagMs = replica ? 0 : rng.pick([0, 0, 30, 300]);
  const replicaRng = rng.fork();

  /** What every core of the run shares. When its node is killed (`alive` false), whatever it scheduled never runs. */
  const coreOptions = (alive: () => boolean): Omit<SyncCoreOptions, 'store'> => ({
    schema: storeSchema,
    clock,
    limits: DEFAULT_LIMITS,
    // Tokens are `user:<id>:<role>,<role>`.
    verifyToken: (token) => {
      const [kind, userId, roles] = token.split(':');
      if (kind !== 'user' || !userId) throw new TidelineError('UNAUTHORIZED', 'bad token');
      return { userId, roles: roles ? roles.split(',') : [] };
    },
    schedule: (fn) => void clock.setTimeout(() => alive() && fn(), 0),
    // Small pages: a client a few commits behind is more than one catch-up page behind.
    pageSize: 4,
    snapshotPageSize: 3,
    // Byte budgets of a few entries, so pages also end on bytes (moving a whole mutation to the next
    // page), and a cap of 2 snapshots, so sessions queue for one while links fail.
    pageBytes: 700,
    snapshotPageBytes: 250,
    maxConcurrentSnapshots: 2,
  });

  /** A primary on `store`. When it is killed, whatever it scheduled never runs. */
  const startPrimary = (following: SimReplica | null): { core: SyncCore; kill: () => void } => {
    let alive = true;
    const fake = (): Promise<void> =>
      new Promise((resolve) => void clock.setTimeout(resolve, replicaRng.int(0, replicaLagMs)));
    const replicated = following ? (lsn: number) => following.waitFor(lsn) : replicaLagMs > 0 ? fake : null;
    const core = new SyncCore({
      ...coreOptions(() => alive),
      ...(replicated ? { replicated } : {}),
      store,
      onCommit: (changes, outcomes?: readonly LoggedOutcome[]) => {
        history.record(changes, outcomes);
        following?.onCommit();
      },
    });
    return { core, kill: () => void (alive = false) };
  };
  // Two nodes share the store (and nothing else): no primary of its own, no replica.
  const nodes =
    mode === 'two-nodes'
      ? new SimNodes({
          memory: store,
          clock,
          rng: rng.fork(),
          wake: randomWakeFaults(rng, config.nodePollMs ?? 1000),
          makeCore: (shared: AsyncStore, alive, committed) =>
            new SyncCore({
              ...coreOptions(alive),
              store: shared,
              sharedLog: true,
              onCommit: (changes, outcomes?: readonly LoggedOutcome[]) => {
                history.record(changes, outcomes);
                committed();
              },
            }),
          log,
        })
      : null;
  let primary = nodes ? null : startPrimary(replica);
  let node = nodes ? 'nodes' : 'primary';

  const faults = randomFaults(rng);
  const localFaults = randomLocalFaults(rng);
  // Two clients may share a user; `sam` is staff: reads every order and restocks products.
  const users = ['alice', 'bob', rng.pick(['alice', 'carol', 'sam'])];
  const clientsByName = new Map<string, SimClient>();
  let snapshots = 0;
  const inspect = (name: string, d: Delivered): void => {
    const client = clientsByName.get(name);
    const userId = client?.userId;
    const readsAll = (collection: string): boolean => client?.allOf.includes(collection) ?? false;
    if (d.kind === 'snapshot') {
      if (d.msg.done) snapshots++;
      for (const { collection, doc } of d.msg.docs) {
        if (OWNER_ONLY.has(collection) && doc['owner'] !== userId && !readsAll(collection)) {
          fail(
            `client ${name} (${userId}) was sent ${collection}/${doc.id} of ${JSON.stringify(doc['owner'])} in a snapshot`,
          );
        }
      }
    } else {
      for (const c of d.msg.changes) {
        if (c.owner !== null && c.owner !== userId && !readsAll(c.collection)) {
          fail(`client ${name} (${userId}) was sent ${c.collection}/${c.id} of ${c.owner} (LSN ${c.lsn})`);
        }
      }
      // With one log (no failover fork), a message covering (from, to] holds every change of the scope in it.
      if (mode !== 'failover') {
        const { from, to } = d.msg;
        const sent = new Set(d.msg.changes.map((c) => c.lsn));
        const missed = history.all.filter(
          (c) =>
            c.lsn > from &&
            c.lsn <= to &&
            !sent.has(c.lsn) &&
            (c.owner === null || c.owner === userId || readsAll(c.collection)),
        );
        if (missed.length > 0) {
          fail(
            `client ${name} was sent changes ${from}→${to} without ${missed.map((c) => `${c.lsn}:${c.collection}/${c.id}`).join(' ')} of its scope`,
          );
        }
      }
    }
  };
  const net = new SimNetwork({
    clock,
    rng: rng.fork(),
    core: (nodes?.any() ?? primary!).core,
    node,
    faults,
    pageAckTimeoutMs: 5_000,
    log,
    inspect,
    fail,
    ...(nodes ? { route: (client: string) => nodes.route(client), elsewhere: (n: string) => nodes.elsewhere(n) } : {}),
  });
  log(
    () =>
      `mode ${mode}, faults ${JSON.stringify(faults)}, local ${JSON.stringify(localFaults)}, ${nodes ? `nodes ${nodes.names.join(', ')}, wake ${JSON.stringify(nodes.wake)}` : `replica lag up to ${replicaLagMs} ms`}`,
  );

  let steps = 0;
  const clients: SimClient[] = [];
  for (let i = 0; i < nClients; i++) {
    const name = `c${i}`;
    const userId = users[i % users.length]!;
    const roles = STAFF.has(userId) ? ['staff'] : [];
    const client = new SimClient(name, userId, roles, seed, {
      clock,
      net,
      history,
      rng: rng.fork(),
      localFaults,
      step: () => steps,
      log,
      fail,
    });
    clients.push(client);
    clientsByName.set(name, client);
    log(() => `${name} is ${userId} (${client.clientId})`);
  }

  // The workload: mutations, breaks, restarts (some offline for a while), crashes and compactions.
  const at = (ms: number, fn: () => void): void => void clock.setTimeout(fn, ms);
  for (const client of clients) {
    at(workRng.int(0, 50), () => client.start());
    for (let k = 0; k < perClient; k++) {
      at(workRng.int(0, workloadMs), () => {
        const op = randomOp(workRng, client.name, client.userId, client.roles.includes('staff'), k, clock.now());
        client.mutate(op.name, op.args);
      });
    }
    const cuts = workRng.int(0, 4);
    for (let k = 0; k < cuts; k++) at(workRng.int(0, workloadMs), () => net.cut(client.name, 'scheduled break'));
    if (workRng.chance(0.35)) {
      const t = workRng.int(0, workloadMs);
      const offline = workRng.pick([0, workRng.int(10, 500), workRng.int(500, 4_000)]);
      at(t, () => client.stop());
      at(t + offline, () => client.restart());
    }
    const crashes = workRng.pick([0, 0, 1, 2]);
    for (let k = 0; k < crashes; k++) {
      const down = workRng.pick([0, workRng.int(10, 300), workRng.int(300, 3_000)]);
      at(workRng.int(0, workloadMs), () => client.crash(down));
    }
  }
  let compactions = 0;
  const nCompactions = workRng.int(0, 3);
  for (let k = 0; k < nCompactions; k++) {
    at(workRng.int(0, workloadMs + 1_000), () => {
      // With two nodes, through one of them: it compacts no further than it has fanned out.
      const by = nodes?.any() ?? { core: primary!.core, node };
      const upTo = nodes && config.boundCompaction ? nodes.minFannedOut() : undefined;
      void by.core.compact(upTo).then((r) => {
        compactions++;
        log(
          () =>
            `COMPACT by ${by.node} → horizon ${r.horizon} (${r.removedChanges} changes, ${r.removedTombstones} tombstones)`,
        );
      });
    });
  }
  // Now and then the primary is killed (kill -9) and restarted on the same data.
  let serverRestarts = 0;
  if (mode === 'single' && workRng.chance(0.25)) {
    at(workRng.int(0, workloadMs), () => {
      primary?.kill();
      store.close();
      store = new MemoryStore({ data: store.data });
      primary = startPrimary(null);
      net.crashServer(primary.core);
      serverRestarts++;
      log(() => 'PRIMARY RESTART');
    });
  }
  // Failover: the primary and its disk are lost; the replica is promoted and the clients move to it.
  let failovers = 0;
  if (replica) {
    at(workRng.int(workloadMs / 4, workloadMs), () => {
      primary?.kill();
      replica.stop();
      store = replica.store;
      const startLsn = store.meta().headLsn;
      const term = store.meta().term + 1;
      store.setTerm(term);
      history.promote(term, startLsn);
      primary = startPrimary(null);
      node = 'replica';
      net.crashServer(primary.core, node);
      failovers++;
      log(() => `FAILOVER: the replica is primary of term ${term} at LSN ${startLsn}`);
    });
  }
  // Two nodes: now and then one is killed (its clients move to the other; the store loses nothing), and
  // sometimes a new node starts in its place, at the store's head.
  if (nodes && workRng.chance(0.4)) {
    const slot = workRng.int(0, 1);
    const t = workRng.int(0, workloadMs);
    const back = workRng.chance(0.6) ? t + workRng.int(10, 2_000) : null;
    at(t, () => {
      const name = nodes.kill(slot);
      net.crashNode(name);
      serverRestarts++;
      log(() => `${name.toUpperCase()} KILLED`);
    });
    if (back !== null)
      at(back, () => {
        const name = nodes.restart(slot);
        log(() => `${name.toUpperCase()} STARTED`);
      });
  }
  at(workloadMs + 1, () => {
    net.faults = { ...HEALTHY, maxLatencyMs: faults.maxLatencyMs };
    for (const client of clients) client.local.faults = NO_LOCAL_FAULTS;
    log(() => 'HEAL');
  });

  // Run until nothing is scheduled: each timer, then every microtask it caused.
  const deadline = START_MS + workloadMs + SETTLE_LIMIT_MS;
  for (;;) {
    await drainMicrotasks();
    let ran: boolean;
    try {
      ran = clock.step();
    } catch (err) {
      fail(`a timer callback threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      continue;
    }
    if (!ran) break;
    if (++steps > MAX_STEPS || clock.now() > deadline) {
      fail(`not idle after ${steps} steps and ${clock.now() - START_MS} ms of virtual time (a livelock?)`);
      break;
    }
  }
  await drainMicrotasks();

  for (const p of history.problems) fail(p);
  await checkEndState({ store, history, clients, initialStock, answers: net.answers, fail });
  for (const client of clients) client.stop();

  const sum = (f: (c: SimClient) => number): number => clients.reduce((n, c) => n + f(c), 0);
  return {
    seed,
    mode,
    failures: problems.map((p) => `seed ${seed} (${mode}): ${p}`),
    stats: {
      steps,
      virtualMs: clock.now() - START_MS,
      mutations: sum((c) => c.queued.length),
      rejected: sum((c) => c.rejectedReports.size),
      snapshots,
      compactions,
      restarts: sum((c) => c.restarts),
      serverRestarts,
      failovers,
      clientCrashes: sum((c) => c.crashes),
      localFailures: sum((c) => c.local.injectedFailures),
      localTransactions: sum((c) => c.local.transactions),
      paths: {
        dedupe: net.stats.duplicatePushes,
        gapRecovered: sum((c) => c.paths.gapRecovered),
        snapshot: sum((c) => c.paths.snapshot),
        rebase: sum((c) => c.paths.rebase),
        fastPath: sum((c) => c.paths.fastPath),
      },
      network: net.stats,
    },
    trace,
  };
}

/** Seeded fault rates: some runs are calm, some stormy. */
function randomFaults(rng: Rng): NetworkFaults {
  return {
    minLatencyMs: 1,
    maxLatencyMs: rng.int(2, 80),
    connectFailure: rng.pick([0, 0.1, 0.3]),
    cutOnSend: rng.pick([0, 0.005, 0.02, 0.05]),
    duplicate: rng.pick([0, 0.05, 0.2]),
    duplicateLagMs: rng.int(0, 300),
    loseAck: rng.pick([0, 0.01, 0.03]),
    noticeMaxMs: rng.int(0, 400),
    dropLive: rng.pick([0, 0.05, 0.2]),
    duplicatePush: rng.pick([0, 0.05, 0.2]),
  };
}

/** Seeded NOTIFY delays and losses between the nodes; some runs lose half of them. */
function randomWakeFaults(rng: Rng, pollMs: number): WakeFaults {
  return { maxLagMs: rng.pick([0, 5, 50, 300]), drop: rng.pick([0, 0, 0.1, 0.5]), pollMs };
}

/** Seeded local store faults: most runs have none, some fail or crash now and then. */
function randomLocalFaults(rng: Rng): LocalFaults {
  return {
    failWrite: rng.pick([0, 0, 0.002, 0.01]),
    crashInside: rng.pick([0, 0, 0.001, 0.004]),
  };
}

/** The data the primary starts with, not made by any client: notes, the counters, products. */
function seedData(store: MemoryStore, history: ServerHistory, rng: Rng, now: number): Map<string, number> {
  const stock = new Map<string, number>();
  const changes = store.transact((tx) => {
    const out = COUNTERS.map((c) =>
      tx.append({ collection: c.collection, id: c.id, doc: { id: c.id, [c.field]: 0 }, owner: null }, null, now),
    );
    for (const id of NOTE_IDS.slice(0, 2)) {
      out.push(tx.append({ collection: 'notes', id, doc: { id, text: 'seed', createdAt: 0 }, owner: null }, null, now));
    }
    for (const p of PRODUCTS) {
      const n = rng.int(1, 5);
      stock.set(p.id, n);
      const doc = { id: p.id, name: `Product ${p.id}`, category: 'sim', price: p.price, stock: n, rating: 4 };
      out.push(tx.append({ collection: 'products', id: p.id, doc, owner: null }, null, now));
    }
    return out;
  });
  history.record(changes);
  return stock;
}
