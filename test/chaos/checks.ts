import { isDeepStrictEqual } from 'node:util';
import type { RejectionRecord } from '../../client/sync/local-store';
import { storeSchema } from '../../shared/apps/store';
import type { Doc } from '../../shared/json';
import type { CollectionDef } from '../../shared/schema/define-schema';
import type { ChaosClient } from './chaos-client';
import { COUNTERS } from './chaos-client';
import type { LogArchive, LoggedChange, LoggedOutcome } from './log-archive';
import type { StoreFile } from './store-file';
import type { Violations } from './violations';
import { INITIAL_STOCK, PRODUCTS } from './workload';

/** A client's replica after quiesce. */
export interface FinalClient {
  client: ChaosClient;
  docs: Map<string, Map<string, Doc>>;
  rejections: RejectionRecord[];
  outbox: number;
}

export interface FinalState {
  clients: FinalClient[];
  archive: LogArchive;
  primary: StoreFile;
  /** failover mode: the replica's file, caught up before the stop. */
  replica: StoreFile | null;
  /** `clientId#seq` of every mutation some push ack reported committed. */
  ackedCommits: ReadonlySet<string>;
}

const OWNER_COLLECTIONS: ReadonlyArray<{ name: string; readRoles: readonly string[] }> = Object.entries(
  storeSchema.collections as Record<string, CollectionDef>,
)
  .filter(([, def]) => def.read === 'owner')
  .map(([name, def]) => ({ name, readRoles: def.readRoles ?? [] }));

/** Checks guarantees 1–5, 7 and 9 on the end state (6 and 8 are checked as the run goes, in ChaosClient and Workload). */
export function checkFinalState(s: FinalState, v: Violations): void {
  const byMutation = s.archive.byMutation();
  const outcomes = s.archive.outcomesByMutation();
  const committed = s.archive.committedKeys();
  checkDurable(s, committed, v);
  checkExactlyOnce(s, byMutation, outcomes, v);
  checkAtomic(s, byMutation, v);
  checkOrder(byMutation, outcomes, v);
  checkConvergence(s, v);
  checkRejections(s, committed, outcomes, v);
  checkIsolation(s, v);
}

function checkDurable(s: FinalState, committed: ReadonlySet<string>, v: Violations): void {
  for (const key of s.ackedCommits) {
    if (!committed.has(key)) v.add(1, `acked ${key} is not in the primary's history`);
  }
}

function checkExactlyOnce(
  s: FinalState,
  byMutation: Map<string, LoggedChange[]>,
  outcomes: Map<string, LoggedOutcome[]>,
  v: Violations,
): void {
  for (const fc of s.clients) {
    for (const seq of fc.client.net.reapplied)
      v.add(2, `${fc.client.name}#${seq} applied again when its push was redelivered`);
  }
  // A mutation that wrote nothing has one outcome entry, and then no changes.
  for (const [key, entries] of outcomes) {
    if (entries.length > 1 || byMutation.has(key)) {
      v.add(2, `${key} settled more than once (outcome LSNs ${entries.map((o) => o.lsn).join(',')})`);
    }
  }
  // One commit per (clientId, seq): its changes have consecutive LSNs and touch each document once.
  for (const [key, changes] of byMutation) {
    const first = changes[0]!.lsn;
    const last = changes[changes.length - 1]!.lsn;
    const docs = new Set(changes.map((c) => `${c.collection}/${c.id}`));
    if (last - first + 1 !== changes.length || docs.size !== changes.length) {
      v.add(2, `${key} committed more than once (LSNs ${changes.map((c) => c.lsn).join(',')})`);
    }
  }
  // Counters: every inc anyone issued is valid, so each one counts exactly once.
  const issued = new Map<string, number>(COUNTERS.map((c) => [c, 0]));
  for (const fc of s.clients) {
    for (const m of fc.client.issued.values()) {
      const a = m.args as { collection?: string; id?: string; by?: number };
      if (m.name === 'inc' && a.collection === 'notes' && a.id !== undefined) {
        issued.set(a.id, (issued.get(a.id) ?? 0) + (a.by ?? 0));
      }
    }
  }
  for (const [counter, sum] of issued) {
    const value = s.primary.docs.get('notes')?.get(counter)?.doc['n'];
    if (value !== sum)
      v.add(2, `${counter} is ${JSON.stringify(value)} on the primary; the incs issued add up to ${sum}`);
  }
}

function checkAtomic(s: FinalState, byMutation: Map<string, LoggedChange[]>, v: Violations): void {
  const restocked = new Map<string, number>(PRODUCTS.map((p) => [p, 0]));
  const sold = new Map<string, number>(PRODUCTS.map((p) => [p, 0]));
  const clientById = new Map(s.clients.map((fc) => [fc.client.clientId, fc.client]));
  const issuedOf = (c: { clientId: string | null; seq: number | null }) =>
    c.clientId === null || c.seq === null ? undefined : clientById.get(c.clientId)?.issued.get(c.seq);
  // Walk the history once: each checkout's stock change is the previous stock minus its quantity.
  const stock = new Map<string, number>();
  for (const c of s.archive.ordered()) {
    if (c.collection !== 'products' || !c.body) continue;
    const now = Number(c.body['stock']);
    if (now < 0) v.add(3, `products/${c.id} stock ${now} at LSN ${c.lsn}`);
    const was = stock.get(c.id);
    stock.set(c.id, now);
    const issued = issuedOf(c);
    if (issued?.name !== 'checkout' || was === undefined) continue;
    const line = (issued.args as { lines: Array<{ productId: string; qty: number }> }).lines.find(
      (l) => l.productId === c.id,
    );
    if (line && now !== was - line.qty) {
      v.add(3, `${c.clientId}#${c.seq}: ${c.id} stock went ${was} → ${now} for qty ${line.qty}`);
    }
  }
  for (const [key, changes] of byMutation) {
    const issued = issuedOf(changes[0]!);
    if (!issued) continue;
    if (issued.name === 'inc' && (issued.args as { collection?: string }).collection === 'products') {
      const a = issued.args as { id: string; by: number };
      restocked.set(a.id, (restocked.get(a.id) ?? 0) + a.by);
    }
    if (issued.name !== 'checkout') continue;
    const args = issued.args as { orderId: string; lines: Array<{ productId: string; qty: number }> };
    if (!changes.some((c) => c.collection === 'orders' && c.id === args.orderId)) {
      v.add(3, `${key} (checkout ${args.orderId}) committed without its order`);
    }
    for (const line of args.lines) {
      if (!changes.some((c) => c.collection === 'products' && c.id === line.productId)) {
        v.add(3, `${key} (checkout ${args.orderId}) committed without the stock change of ${line.productId}`);
      }
      sold.set(line.productId, (sold.get(line.productId) ?? 0) + line.qty);
    }
  }
  for (const p of PRODUCTS) {
    const final = s.primary.docs.get('products')?.get(p)?.doc['stock'];
    const expected = INITIAL_STOCK + (restocked.get(p) ?? 0) - (sold.get(p) ?? 0);
    if (final !== expected) {
      v.add(
        3,
        `${p}: stock ${JSON.stringify(final)} on the primary, expected ${INITIAL_STOCK} + ${restocked.get(p)} restocked - ${sold.get(p)} sold`,
      );
    }
  }
  // A refused checkout left no order behind.
  for (const fc of s.clients) {
    for (const r of fc.rejections) {
      const orderId = r.name === 'checkout' ? (r.args as { orderId?: string }).orderId : undefined;
      if (orderId !== undefined && s.primary.docs.get('orders')?.has(orderId)) {
        v.add(3, `${fc.client.name}#${r.seq}: checkout ${orderId} reported ${r.error.code} but its order exists`);
      }
    }
  }
}

function checkOrder(
  byMutation: Map<string, LoggedChange[]>,
  outcomes: Map<string, LoggedOutcome[]>,
  v: Violations,
): void {
  const perClient = new Map<string, Array<{ lsn: number; seq: number }>>();
  for (const [key, entries] of [...byMutation, ...outcomes]) {
    const [clientId, seq] = key.split('#') as [string, string];
    const list = perClient.get(clientId) ?? [];
    list.push({ lsn: entries[0]!.lsn, seq: Number(seq) });
    perClient.set(clientId, list);
  }
  for (const [clientId, list] of perClient) {
    list.sort((a, b) => a.lsn - b.lsn);
    for (let i = 1; i < list.length; i++) {
      if (list[i]!.seq <= list[i - 1]!.seq) {
        v.add(4, `${clientId}: seq ${list[i]!.seq} committed at LSN ${list[i]!.lsn}, after seq ${list[i - 1]!.seq}`);
      }
    }
  }
}

/** The primary's documents a user may read (guarantee 9's scope). */
function scopeOf(primary: StoreFile, userId: string, roles: readonly string[]): Map<string, Map<string, Doc>> {
  const out = new Map<string, Map<string, Doc>>();
  for (const [collection, docs] of primary.docs) {
    const owned = OWNER_COLLECTIONS.find((o) => o.name === collection);
    const all = !owned || owned.readRoles.some((r) => roles.includes(r));
    const m = new Map<string, Doc>();
    for (const [id, { owner, doc }] of docs) if (all || owner === userId) m.set(id, doc);
    out.set(collection, m);
  }
  return out;
}

function checkConvergence(s: FinalState, v: Violations): void {
  for (const fc of s.clients) {
    const c = fc.client;
    if (fc.outbox !== 0) v.add(5, `${c.name} still has ${fc.outbox} mutations in its outbox`);
    const scope = scopeOf(s.primary, c.userId, c.roles);
    for (const collection of Object.keys(storeSchema.collections)) {
      const want = scope.get(collection) ?? new Map<string, Doc>();
      const have = fc.docs.get(collection) ?? new Map<string, Doc>();
      let diffs = 0;
      for (const id of new Set([...want.keys(), ...have.keys()])) {
        if (!isDeepStrictEqual(want.get(id), have.get(id))) {
          diffs++;
          if (diffs <= 2) {
            v.add(
              5,
              `${c.name} ${collection}/${id}: local ${JSON.stringify(have.get(id))}, primary ${JSON.stringify(want.get(id))}`,
            );
          }
        }
      }
      if (diffs > 2) v.add(5, `${c.name} ${collection}: ${diffs} documents differ in all`);
    }
  }
  if (s.replica) {
    const r = s.replica;
    const p = s.primary;
    if (r.head !== p.head) v.add(5, `replica head ${r.head}, primary head ${p.head}`);
    for (const collection of new Set([...p.docs.keys(), ...r.docs.keys()])) {
      if (!isDeepStrictEqual(p.docs.get(collection), r.docs.get(collection))) {
        v.add(5, `replica's ${collection} differ from the primary's`);
      }
    }
    for (const id of new Set([...p.lastSeq.keys(), ...r.lastSeq.keys()])) {
      if (p.lastSeq.get(id) !== r.lastSeq.get(id)) {
        v.add(5, `client ${id}: last seq ${p.lastSeq.get(id)} on the primary, ${r.lastSeq.get(id)} on the replica`);
      }
    }
  }
}

function checkRejections(
  s: FinalState,
  committedKeys: ReadonlySet<string>,
  outcomes: Map<string, LoggedOutcome[]>,
  v: Violations,
): void {
  for (const fc of s.clients) {
    const c = fc.client;
    const reported = new Map(fc.rejections.map((r) => [r.seq, r.error.code]));
    let vanished = 0;
    for (const seq of c.issued.keys()) {
      const key = `${c.clientId}#${seq}`;
      const committed = committedKeys.has(key);
      const rejected = reported.get(seq);
      if (committed && rejected !== undefined)
        v.add(7, `${c.name}#${seq} committed, yet reported rejected (${rejected})`);
      if (!committed && rejected === undefined) {
        vanished++;
        if (vanished <= 3) {
          const wire = (c.wire.get(seq) ?? []).map((e) => e?.code ?? 'committed').join(',') || 'no ack';
          v.add(7, `${c.name}#${seq} (${c.issued.get(seq)!.name}) left the outbox with no outcome (wire: ${wire})`);
        }
      }
      // A final refusal on the wire (not a retryable one) is what the client reports, and never commits.
      for (const error of c.wire.get(seq) ?? []) {
        if (error === null || error.retryable) continue;
        if (committed) v.add(7, `${c.name}#${seq}: the primary answered ${error.code}, yet it committed`);
        else if (rejected !== error.code) {
          v.add(7, `${c.name}#${seq}: the primary answered ${error.code}, the client reports ${rejected ?? 'nothing'}`);
        }
      }
      const stored =
        s.primary.rejections.get(key) ?? outcomes.get(key)?.find((o) => o.code !== null)?.code ?? undefined;
      if (stored !== undefined && stored !== rejected) {
        v.add(7, `${c.name}#${seq}: the primary stored ${stored}, the client reports ${rejected ?? 'nothing'}`);
      }
      // A refusal the client was told of is part of the history, like a commit: a node promoted later answers the same.
      const told = (c.wire.get(seq) ?? []).find((e) => e !== null && !e.retryable);
      if (told && s.archive.logsOutcomes && !outcomes.get(key)?.some((o) => o.code === told.code)) {
        v.add(7, `${c.name}#${seq}: refused with ${told.code} on the wire, but no such outcome in the primary's log`);
      }
    }
    if (vanished > 3) v.add(7, `${c.name}: ${vanished} mutations left the outbox with no outcome in all`);
    for (const r of fc.rejections) {
      if (!c.issued.has(r.seq)) v.add(7, `${c.name} reports a rejection of seq ${r.seq}, which it never issued`);
    }
  }
}

function checkIsolation(s: FinalState, v: Violations): void {
  for (const fc of s.clients) {
    const c = fc.client;
    for (const { name, readRoles } of OWNER_COLLECTIONS) {
      if (readRoles.some((r) => c.roles.includes(r))) continue;
      for (const [id, doc] of fc.docs.get(name) ?? []) {
        if (doc['owner'] !== c.userId)
          v.add(9, `${c.name} (${c.userId}) holds ${name}/${id} of ${JSON.stringify(doc['owner'])}`);
      }
    }
  }
  // Nobody wrote another user's document: every change to an owner-only document came from its owner.
  const userOf = new Map(s.clients.map((fc) => [fc.client.clientId, fc.client.userId]));
  for (const c of s.archive.byLsn.values()) {
    if (c.clientId === null || !OWNER_COLLECTIONS.some((o) => o.name === c.collection)) continue;
    const writer = userOf.get(c.clientId);
    if (writer !== undefined && c.owner !== writer && !(c.collection === 'orders' && c.owner === null)) {
      v.add(9, `${writer} wrote ${c.collection}/${c.id} owned by ${String(c.owner)} (LSN ${c.lsn})`);
    }
  }
}
