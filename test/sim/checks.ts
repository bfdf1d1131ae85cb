import type { MemoryStore } from '../../server/store/memory-store';
import type { Doc, JsonValue } from '../../shared/json';
import type { Change } from '../../shared/protocol/change';
import type { SimClient } from './sim-client';
import type { DocsView, ServerHistory } from './server-history';
import { diffViews, emptyView } from './server-history';
import type { Answer } from './sim-network';
import { COUNTERS } from './workload';

export interface EndState {
  store: MemoryStore;
  history: ServerHistory;
  clients: readonly SimClient[];
  initialStock: ReadonlyMap<string, number>;
  /** What the primaries answered to pushes. */
  answers: readonly Answer[];
  fail: (message: string) => void;
}

/** The checks on the idle end state: convergence, exactly-once, the counter, the stock. */
export async function checkEndState(s: EndState): Promise<void> {
  for (const client of s.clients) await checkConverged(s, client);
  const applied = checkExactlyOnce(s);
  checkCounter(s, applied);
  checkStock(s, applied);
  checkRejectionsHeard(s);
}

/** Convergence: idle, live, nothing pending, and the replica equals the primary's scope. */
async function checkConverged({ store, fail }: EndState, client: SimClient): Promise<void> {
  const { name, local } = client;
  if (client.connectionState !== 'live') {
    fail(
      `client ${name} ended ${client.connectionState}, not live (${client.engine.status().lastError?.message ?? 'no error'})`,
    );
  }
  const state = await local.inner.transaction(async (tx) => ({
    outbox: await tx.outbox(),
    shadow: await tx.shadow(),
    staged: await tx.staged(),
    meta: await tx.meta(),
    visible: local.dump(),
  }));
  if (state.outbox.length > 0) {
    fail(
      `client ${name} diverged: ${state.outbox.length} mutations still in its outbox (seqs ${state.outbox.map((e) => e.seq).join(',')})`,
    );
  }
  if (state.shadow.length > 0)
    fail(`client ${name} diverged: shadow still holds ${state.shadow.map((e) => e.key).join(',')}`);
  // The status count is kept from deltas and recounts (PendingCount), not read: it must end where the outbox does.
  const shown = client.engine.status().pending;
  if (shown !== state.outbox.length)
    fail(`client ${name} shows ${shown} pending, its outbox holds ${state.outbox.length}`);
  if (state.staged.length > 0) fail(`client ${name}: ${state.staged.length} snapshot documents left staged`);
  const expected = viewOf(store.scanScope({ userId: client.userId, allOf: client.allOf }), Object.keys(state.visible));
  const diff = diffViews(state.visible, expected);
  if (diff !== null) fail(`client ${name} diverged from the primary: ${diff}`);
  const seqs = client.queued.map((q) => q.seq).sort((a, b) => a - b);
  if (seqs.some((seq, i) => seq !== i + 1) || state.meta.nextSeq !== seqs.length + 1) {
    fail(`client ${name} queued seqs ${seqs.join(',')} but its next seq is ${state.meta.nextSeq}`);
  }
}

function viewOf(docs: ReadonlyArray<{ collection: string; doc: Doc }>, collections: readonly string[]): DocsView {
  const view = emptyView(collections);
  for (const { collection, doc } of docs) (view[collection] ??= {})[doc.id] = doc;
  return view;
}

/** Each client's applied mutations, by seq, with the changes they committed. */
type Applied = Map<SimClient, Map<number, Change[]>>;

/**
 * Exactly once, per-client order and clear rejection: every queued mutation
 * has one outcome on the primary; an applied one committed once, as one run
 * of consecutive LSNs, in seq order; a rejected one committed nothing and
 * was reported to its client exactly once.
 */
function checkExactlyOnce({ store, history, clients, fail }: EndState): Applied {
  const applied: Applied = new Map();
  const byClientId = new Map(clients.map((c) => [c.clientId, c]));
  const groups = new Map<string, Map<number, Change[]>>();
  const lastSeqSeen = new Map<string, number>();
  for (const c of history.changes) {
    if (c.clientId === null) continue;
    if (c.seq === null) {
      fail(`LSN ${c.lsn} names client ${c.clientId} but no seq`);
      continue;
    }
    const group = groups.get(c.clientId) ?? new Map<number, Change[]>();
    groups.set(c.clientId, group);
    const prev = lastSeqSeen.get(c.clientId) ?? 0;
    if (c.seq < prev)
      fail(`client ${c.clientId}: seq ${c.seq} committed at LSN ${c.lsn}, after seq ${prev} (per-client order)`);
    lastSeqSeen.set(c.clientId, c.seq);
    const list = group.get(c.seq) ?? [];
    group.set(c.seq, list);
    list.push(c);
  }

  for (const [clientId, group] of groups) {
    const client = byClientId.get(clientId);
    if (!client) {
      fail(`changes from unknown client ${clientId}`);
      continue;
    }
    const queued = new Set(client.queued.map((q) => q.seq));
    for (const [seq, list] of group) {
      if (!queued.has(seq)) fail(`client ${client.name}: seq ${seq} committed but never queued`);
      const first = list[0]!.lsn;
      const last = list[list.length - 1]!.lsn;
      const keys = new Set(list.map((c) => `${c.collection}/${c.id}`));
      if (last - first + 1 !== list.length || keys.size !== list.length) {
        fail(
          `client ${client.name}: mutation ${seq} committed more than once (LSNs ${list.map((c) => `${c.lsn}:${c.collection}/${c.id}`).join(' ')})`,
        );
      }
    }
  }

  // A mutation that wrote nothing (rejected, or a no-op) settles with one outcome entry in the log instead.
  const finalTerm = history.term;
  const outcomeSeqs = new Map<string, Set<number>>();
  // The primary's verdicts: a rejection is an outcome entry with an error in the final log. The store's
  // rejection rows are no ground truth: it drops those a client settled (its hello's pendingFrom).
  const rejectedInLog = new Map<string, { code: string }>();
  for (const o of history.outcomes) {
    if (!history.inLog(o, finalTerm)) continue;
    if (o.error !== null) rejectedInLog.set(`${o.clientId}\u0000${o.seq}`, o.error);
    const seqs = outcomeSeqs.get(o.clientId) ?? new Set<number>();
    outcomeSeqs.set(o.clientId, seqs);
    const name = byClientId.get(o.clientId)?.name ?? o.clientId;
    if (seqs.has(o.seq)) fail(`client ${name}: seq ${o.seq} has more than one outcome entry in the log`);
    if (groups.get(o.clientId)?.has(o.seq)) fail(`client ${name}: seq ${o.seq} has both changes and an outcome entry`);
    seqs.add(o.seq);
  }

  for (const client of clients) {
    const group = groups.get(client.clientId) ?? new Map<number, Change[]>();
    applied.set(client, group);
    const maxQueued = client.queued.reduce((m, q) => Math.max(m, q.seq), 0);
    const { lastSeq, stored } = store.transact((tx) => ({
      lastSeq: tx.lastSeq(client.clientId),
      stored: new Map(client.queued.map((q) => [q.seq, tx.rejection(client.clientId, q.seq)])),
    }));
    if (lastSeq !== maxQueued) {
      fail(
        `client ${client.name}: the primary has outcomes up to seq ${lastSeq}, the client queued up to ${maxQueued}`,
      );
    }
    for (const q of client.queued) {
      const rejection = rejectedInLog.get(`${client.clientId}\u0000${q.seq}`);
      const kept = stored.get(q.seq);
      if (kept && kept.code !== rejection?.code) {
        fail(`client ${client.name}: seq ${q.seq} has a stored rejection (${kept.code}) the log does not have`);
      }
      const reports = client.rejectedReports.get(q.seq)?.length ?? 0;
      if (rejection && group.has(q.seq)) fail(`client ${client.name}: seq ${q.seq} was both rejected and committed`);
      if (rejection && reports !== 1) {
        fail(
          `client ${client.name}: seq ${q.seq} (${q.name}) was rejected (${rejection.code}) but reported ${reports} times`,
        );
      }
      if (!rejection && reports > 0)
        fail(`client ${client.name}: seq ${q.seq} (${q.name}) reported rejected but the primary applied it`);
    }
  }
  return applied;
}

/** Concurrent increments all count: each counter is the sum of its applied `inc`s, and none was rejected. */
function checkCounter({ store, clients, fail }: EndState, applied: Applied): void {
  for (const counter of COUNTERS) {
    let queued = 0;
    let sum = 0;
    for (const client of clients) {
      const group = applied.get(client)!;
      for (const q of client.queued) {
        if (q.name !== 'inc' || counterOf(q.args) !== counter) continue;
        queued++;
        if (group.has(q.seq)) sum += (q.args as { by: number }).by;
        else fail(`client ${client.name}: inc ${q.seq} of ${counter.id} was not applied`);
      }
    }
    const value = store.getDoc(counter.collection, counter.id)?.doc?.[counter.field];
    if (value !== sum)
      fail(`${counter.id} is ${JSON.stringify(value)} but the ${queued} applied incs add up to ${sum}`);
  }
}

function counterOf(args: JsonValue): (typeof COUNTERS)[number] | undefined {
  const a = args as { collection?: unknown; id?: unknown };
  return COUNTERS.find((c) => a.collection === c.collection && a.id === c.id);
}

/**
 * Clear rejection, whichever node answered (guarantee 7): every mutation a
 * primary answered as rejected, in a push ack it sent (or would have sent,
 * had the network not lost it), reached its client as a rejection with that
 * code, and no mutation was answered both ways. The answers go out only
 * once the commit is on the synchronous replica, so a promoted replica must
 * answer for them the same way.
 */
function checkRejectionsHeard({ clients, answers, fail }: EndState): void {
  const byName = new Map(clients.map((c) => [c.name, c]));
  const seen = new Map<string, Answer>();
  for (const a of answers) {
    const key = `${a.client}/${a.seq}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, a);
    else if (first.code !== a.code) {
      fail(
        `client ${a.client}: seq ${a.seq} was answered ${first.status} ${first.code ?? ''} by the ${first.node}, then ${a.status} ${a.code ?? ''} by the ${a.node}`,
      );
    }
  }
  for (const a of seen.values()) {
    if (a.code === null) continue;
    const client = byName.get(a.client)!;
    const heard = client.rejectedReports.get(a.seq) ?? [];
    if (!heard.includes(a.code)) {
      const q = client.queued.find((m) => m.seq === a.seq);
      fail(
        `client ${a.client}: seq ${a.seq} (${q?.name ?? '?'}) was rejected by the ${a.node} with ${a.code}, but the client heard ${heard.length === 0 ? 'no rejection' : heard.join(',')}`,
      );
    }
  }
}

/** Stock never goes negative, and it moved by exactly what applied checkouts took and restocks added. */
function checkStock({ store, history, clients, initialStock, fail }: EndState, applied: Applied): void {
  for (const c of history.changes) {
    if (c.collection === 'products' && c.doc !== null && !(typeof c.doc['stock'] === 'number' && c.doc['stock'] >= 0)) {
      fail(`products/${c.id} stock is ${JSON.stringify(c.doc['stock'])} at LSN ${c.lsn}`);
    }
  }
  const sold = new Map<string, number>();
  for (const client of clients) {
    const group = applied.get(client)!;
    for (const q of client.queued) {
      if (q.name === 'inc' && counterOf(q.args) === undefined && group.has(q.seq)) {
        const { id, by } = q.args as { id: string; by: number };
        sold.set(id, (sold.get(id) ?? 0) - by);
      }
      if (q.name !== 'checkout' || !group.has(q.seq)) continue;
      const { lines, orderId } = q.args as { lines: Array<{ productId: string; qty: number }>; orderId: string };
      for (const l of lines) sold.set(l.productId, (sold.get(l.productId) ?? 0) + l.qty);
      const order = store.getDoc('orders', orderId);
      if (order?.doc == null || order.owner !== client.userId)
        fail(`order ${orderId} of client ${client.name} is missing`);
    }
  }
  for (const [id, initial] of initialStock) {
    const stock = store.getDoc('products', id)?.doc?.['stock'];
    const expected = initial - (sold.get(id) ?? 0);
    if (stock !== expected) {
      fail(`products/${id} stock is ${JSON.stringify(stock)}, expected ${initial} - ${sold.get(id) ?? 0} sold net`);
    }
  }
}
