import { MemoryStore } from '../../server/store/memory-store';
import { SyncCore } from '../../server/sync/sync-core';
import { storeSchema } from '../../shared/apps/store';
import { TidelineError } from '../../shared/errors';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import { checkEndState } from './checks';
import { Rng } from './random';
import { SimClient } from './sim-client';
import { HEALTHY, SimNetwork } from './sim-network';
import type { Delivered, NetworkFaults, NetworkStats } from './sim-network';
import { ServerHistory } from './server-history';
import { COUNTER, NOTE_IDS, PRODUCTS, randomOp } from './workload';
import { drainMicrotasks, VirtualClock } from './virtual-clock';

export interface SimConfig {
  seed: number;
  clients?: number;
  mutationsPerClient?: number;
  /** Virtual time over which the mutations and faults are spread. */
  workloadMs?: number;
  /** Keep a trace of every message and state change. */
  trace?: boolean;
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
  localTransactions: number;
  network: NetworkStats;
}

export interface SimResult {
  seed: number;
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
 * clock. A random workload and random faults run for `workloadMs`; then the
 * network heals and the run goes on until no timer is left, and the checks
 * look at the end state. Checks that watch the run as it goes (monotonic
 * reads, scope, the commit stream) report through the same list.
 */
export async function runSimulation(config: SimConfig): Promise<SimResult> {
  const { seed } = config;
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

  // Some runs make acks and fan-out wait for (simulated) synchronous replicas.
  const replicaLagMs = rng.pick([0, 0, 30, 300]);
  const replicaRng = rng.fork();
  const replicated = (): Promise<void> =>
    new Promise((resolve) => void clock.setTimeout(resolve, replicaRng.int(0, replicaLagMs)));

  /** A primary on `store`. When it is killed, whatever it scheduled never runs. */
  const startPrimary = (): { core: SyncCore; kill: () => void } => {
    let alive = true;
    const core = new SyncCore({
      ...(replicaLagMs > 0 ? { replicated } : {}),
      store,
      schema: storeSchema,
      clock,
      limits: DEFAULT_LIMITS,
      // Tokens are `user:<id>:<role>,<role>`.
      verifyToken: (token) => {
        const [kind, userId, roles] = token.split(':');
        if (kind !== 'user' || !userId) throw new TidelineError('UNAUTHORIZED', 'bad token');
        return { userId, roles: roles ? roles.split(',') : [] };
      },
      schedule: (fn) => void clock.setTimeout(() => alive && fn(), 0),
      pageSize: 4,
      snapshotPageSize: 3,
      onCommit: (changes, outcomes) => history.record(changes, outcomes),
    });
    return { core, kill: () => void (alive = false) };
  };
  let primary = startPrimary();

  const faults = randomFaults(rng);
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
    }
  };
  const net = new SimNetwork({
    clock,
    rng: rng.fork(),
    core: primary.core,
    faults,
    pageAckTimeoutMs: 5_000,
    log,
    inspect,
  });
  log(() => `faults ${JSON.stringify(faults)}, replica lag up to ${replicaLagMs} ms`);

  const clients: SimClient[] = [];
  for (let i = 0; i < nClients; i++) {
    const name = `c${i}`;
    const userId = users[i % users.length]!;
    const roles = STAFF.has(userId) ? ['staff'] : [];
    const client = new SimClient(name, userId, roles, seed, { clock, net, history, rng: rng.fork(), log, fail });
    clients.push(client);
    clientsByName.set(name, client);
    log(() => `${name} is ${userId} (${client.clientId})`);
  }

  // The workload: mutations, breaks, restarts (some offline for a while) and compactions.
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
  }
  let compactions = 0;
  const nCompactions = workRng.int(0, 3);
  for (let k = 0; k < nCompactions; k++) {
    at(workRng.int(0, workloadMs + 1_000), () => {
      const r = primary.core.compact();
      compactions++;
      log(() => `COMPACT → horizon ${r.horizon} (${r.removedChanges} changes, ${r.removedTombstones} tombstones)`);
    });
  }
  // Now and then the primary is killed (kill -9) and restarted on the same data.
  let serverRestarts = 0;
  if (workRng.chance(0.25)) {
    at(workRng.int(0, workloadMs), () => {
      primary.kill();
      store.close();
      store = new MemoryStore({ data: store.data });
      primary = startPrimary();
      net.crashServer(primary.core);
      serverRestarts++;
      log(() => 'PRIMARY RESTART');
    });
  }
  at(workloadMs + 1, () => {
    net.faults = { ...HEALTHY, maxLatencyMs: faults.maxLatencyMs };
    log(() => 'HEAL');
  });

  // Run until nothing is scheduled: each timer, then every microtask it caused.
  let steps = 0;
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
  await checkEndState({ store, history, clients, initialStock, fail });
  for (const client of clients) client.stop();

  return {
    seed,
    failures: problems.map((p) => `seed ${seed}: ${p}`),
    stats: {
      steps,
      virtualMs: clock.now() - START_MS,
      mutations: clients.reduce((n, c) => n + c.queued.length, 0),
      rejected: clients.reduce((n, c) => n + c.rejectedReports.size, 0),
      snapshots,
      compactions,
      restarts: clients.reduce((n, c) => n + c.restarts, 0),
      serverRestarts,
      localTransactions: clients.reduce((n, c) => n + c.local.transactions, 0),
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
  };
}

/** The data the primary starts with, not made by any client: notes, the counter, products. */
function seedData(store: MemoryStore, history: ServerHistory, rng: Rng, now: number): Map<string, number> {
  const stock = new Map<string, number>();
  const changes = store.transact((tx) => {
    const out = [
      tx.append(
        { collection: 'notes', id: COUNTER.id, doc: { id: COUNTER.id, [COUNTER.field]: 0 }, owner: null },
        null,
        now,
      ),
    ];
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
