import { randomUUID } from 'node:crypto';
import { TidelineError } from '../../shared/errors';
import type { WireErrorShape } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import type { Write } from '../../shared/mutators/types';
import type { Change } from '../../shared/protocol/change';
import { mergeByLsn } from './log';
import { heldSnapshotCursor } from './snapshot-cursor';
import { authorOf, isServerOrigin, logEntryBytes, orderValueOf, REJECTION_WINDOW, storedRejection } from './store';
import type {
  DocQuery,
  LogPage,
  OrderValue,
  OutcomeEntry,
  ReplicaSnapshot,
  Scope,
  ServerOriginRecord,
  SnapshotCursor,
  Store,
  StoreMeta,
  StoredDoc,
  StoreTx,
  TermStart,
  Usage,
} from './store';

interface MemoryDoc {
  collection: string;
  id: string;
  owner: string | null;
  lsn: number;
  /** JSON text, as SQLite keeps it, so every read hands out a fresh copy and no caller can alias stored data. */
  body: string | null;
  /** Who the live document counts against (see `authorOf`); null for a tombstone or an uncounted one. */
  author: string | null;
}

type MemoryChange = Omit<Change, 'doc'> & { body: string | null };
/** One log entry: a document change, or the outcome of a mutation that wrote nothing. */
type MemoryEntry = MemoryChange | OutcomeEntry;

const isChange = (e: MemoryEntry): e is MemoryChange => 'collection' in e;
const entryBytes = (e: MemoryEntry): number => logEntryBytes(e);
const changeOf = ({ body, ...c }: MemoryChange): Change => ({ ...c, doc: parseBody(body) });
const copyOutcome = (o: OutcomeEntry): OutcomeEntry => ({
  ...o,
  error: o.error === null ? null : { ...storedRejection(o.error) },
});

/**
 * Everything a `MemoryStore` keeps: what survives a simulated restart. Pass
 * it to a new `MemoryStore` (after closing the old one) to reopen the store.
 */
export interface MemoryStoreData {
  readonly serverId: string;
  term: number;
  headLsn: number;
  horizon: number;
  terms: TermStart[];
  readonly docs: Map<string, MemoryDoc>;
  /** Log entries in LSN order; `log[i].lsn === horizon + 1 + i`. */
  log: MemoryEntry[];
  readonly clients: Map<string, number>;
  /** The user each bound client id belongs to (see `StoreTx.clientUser`). */
  readonly clientUsers: Map<string, string>;
  /** See `Store.clusterId`; left out (undefined) like null, for data made before cluster ids. */
  clusterId?: string | null;
  readonly rejections: Map<string, WireErrorShape>;
  /** Keyed server writes by origin (see `SERVER_ORIGIN_PREFIX`). */
  readonly serverOrigins: Map<string, ServerOriginRecord>;
  /** What each author holds per collection, keyed `collection\u0000userId`; only non-empty entries. */
  readonly usage: Map<string, Usage>;
}

export interface MemoryStoreOptions {
  /** Fixed id for deterministic runs; random when left out. Ignored when `data` is given. */
  serverId?: string;
  /** The data of a closed store, to reopen it. */
  data?: MemoryStoreData;
}

const keyOf = (collection: string, id: string): string => `${collection}\u0000${id}`;
const rejectionKey = (clientId: string, seq: number): string => `${clientId}\u0000${seq}`;

/**
 * The in-memory `Store` for tests and the simulated network, with the same
 * semantics as the SQLite store (the acceptance suite checks both).
 * Transactions keep an undo log: every write pushes its inverse, and a throw
 * replays the inverses back to where the transaction (or savepoint) began.
 */
export class MemoryStore implements Store {
  readonly data: MemoryStoreData;
  private readonly undo: Array<() => void> = [];
  private depth = 0;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.data = options.data ?? {
      serverId: options.serverId ?? randomUUID(),
      term: 1,
      headLsn: 0,
      horizon: 0,
      terms: [{ term: 1, startLsn: 0 }],
      docs: new Map(),
      log: [],
      clients: new Map(),
      clientUsers: new Map(),
      rejections: new Map(),
      serverOrigins: new Map(),
      usage: new Map(),
      clusterId: randomUUID(),
    };
  }

  meta(): StoreMeta {
    this.assertOpen();
    const { serverId, term, headLsn, horizon } = this.data;
    return { serverId, term, headLsn, horizon };
  }

  getDoc(collection: string, id: string): StoredDoc | undefined {
    this.assertOpen();
    const d = this.data.docs.get(keyOf(collection, id));
    if (d === undefined) return undefined;
    return { collection, id, doc: parseBody(d.body), owner: d.owner, lsn: d.lsn };
  }

  transact<T>(fn: (tx: StoreTx) => T): T {
    this.assertOpen();
    let active = true;
    const check = (): void => {
      if (!active) throw new TidelineError('INTERNAL', 'a store transaction was used after it ended');
    };
    const tx: StoreTx = {
      getDoc: (collection, id) => {
        check();
        return this.getDoc(collection, id);
      },
      lastSeq: (clientId) => {
        check();
        return this.data.clients.get(clientId) ?? 0;
      },
      rejection: (clientId, seq) => {
        check();
        const r = this.data.rejections.get(rejectionKey(clientId, seq));
        return r === undefined ? undefined : { ...r };
      },
      append: (write, origin, ts) => {
        check();
        return this.append(write, origin, ts);
      },
      recordOutcome: (clientId, seq, rejection) => {
        check();
        this.recordOutcome(clientId, seq, rejection);
      },
      appendOutcome: (clientId, seq, rejection, ts) => {
        check();
        const data = this.data;
        const error = rejection === null ? null : storedRejection(rejection);
        const entry: OutcomeEntry = { lsn: data.headLsn + 1, term: data.term, clientId, seq, error, ts };
        this.pushEntry(copyOutcome(entry));
        this.recordOutcome(clientId, seq, error);
        this.noteServerOrigin(clientId, entry.lsn, ts);
        return entry;
      },
      forgetRejections: (clientId, below) => {
        check();
        // Rejections are kept only for the newest REJECTION_WINDOW seqs, so none lie further down than this.
        const from = Math.max(1, (this.data.clients.get(clientId) ?? 0) - REJECTION_WINDOW + 1);
        this.dropRejections(clientId, from, below - 1);
      },
      serverOrigin: (origin) => {
        check();
        const r = this.data.serverOrigins.get(origin);
        return r === undefined ? undefined : { ...r };
      },
      clientUser: (clientId) => {
        check();
        return this.data.clientUsers.get(clientId) ?? null;
      },
      usage: (collection, userId) => {
        check();
        const u = this.data.usage.get(keyOf(collection, userId));
        return u ? { ...u } : { docs: 0, bytes: 0 };
      },
      docAuthor: (collection, id) => {
        check();
        const d = this.data.docs.get(keyOf(collection, id));
        return d?.body != null ? d.author : null;
      },
      bindClient: (clientId, userId) => {
        check();
        this.bind(clientId, userId);
      },
    };
    try {
      return this.atomically(() => fn(tx));
    } finally {
      active = false;
    }
  }

  readChanges(after: number, limit: number): Change[] {
    this.assertOpen();
    if (!(limit >= 1)) return [];
    const { log, horizon } = this.data;
    const start = Math.max(0, Math.floor(after) - horizon);
    const out: Change[] = [];
    for (let i = start; i < log.length && out.length < limit; i++) {
      const e = log[i]!;
      if (isChange(e)) out.push(changeOf(e));
    }
    return out;
  }

  readLog(after: number, limit: number, maxBytes = Infinity): LogPage {
    this.assertOpen();
    const { log, horizon } = this.data;
    const start = Math.max(0, Math.floor(after) - horizon);
    const n = Math.max(1, Math.floor(Math.min(limit, Number.MAX_SAFE_INTEGER)));
    // Up to n entries within the byte budget (the first entry always).
    let end = start;
    let bytes = 0;
    while (end < log.length && end - start < n) {
      const size = entryBytes(log[end]!);
      if (end > start && bytes + size > maxBytes) break;
      bytes += size;
      end++;
    }
    // Finish the mutation the page ends in, or, when that would pass the byte budget, leave it for the
    // next page (unless it began the page: a mutation over the budget comes whole, on a page of its own).
    const last = log[end - 1];
    if (last !== undefined && isChange(last) && last.clientId !== null) {
      const sameMutation = (e: MemoryEntry | undefined): boolean =>
        e !== undefined && isChange(e) && e.clientId === last.clientId && e.seq === last.seq;
      let finished = end;
      let extra = 0;
      while (finished < log.length && sameMutation(log[finished])) extra += entryBytes(log[finished++]!);
      if (finished > end && bytes + extra > maxBytes) {
        let begin = end - 1;
        while (begin > start && sameMutation(log[begin - 1])) begin--;
        end = begin > start ? begin : finished;
      } else {
        end = finished;
      }
    }
    const page: LogPage = { changes: [], outcomes: [], to: end > start ? log[end - 1]!.lsn : after };
    for (let i = start; i < end; i++) {
      const e = log[i]!;
      if (isChange(e)) page.changes.push(changeOf(e));
      else page.outcomes.push(copyOutcome(e));
    }
    return page;
  }

  scanScope(scope: Scope): Array<{ collection: string; doc: Doc }> {
    this.assertOpen();
    return this.inScope(scope).map((d) => ({ collection: d.collection, doc: parseBody(d.body) as Doc }));
  }

  /** Copies references to the scope's documents (immutable strings) and the client's outcomes, now. */
  openSnapshot(scope: Scope, clientId: string): SnapshotCursor {
    this.assertOpen();
    const docs = this.inScope(scope).map((d) => ({ collection: d.collection, body: d.body as string }));
    const lastSeq = this.data.clients.get(clientId) ?? 0;
    const rejections = new Map<number, WireErrorShape>();
    for (let seq = Math.max(1, lastSeq - REJECTION_WINDOW + 1); seq <= lastSeq; seq++) {
      const error = this.data.rejections.get(rejectionKey(clientId, seq));
      if (error !== undefined) rejections.set(seq, { ...error });
    }
    return heldSnapshotCursor(this.data.headLsn, docs, lastSeq, rejections);
  }

  /** The live documents `scope` may read, ordered by (collection, id). */
  private inScope(scope: Scope): MemoryDoc[] {
    const visible: MemoryDoc[] = [];
    for (const d of this.data.docs.values()) {
      const all = scope.allOf?.includes(d.collection) ?? false;
      if (d.body !== null && (d.owner === null || d.owner === scope.userId || all)) visible.push(d);
    }
    visible.sort((a, b) => compareCodePoints(a.collection, b.collection) || compareCodePoints(a.id, b.id));
    return visible;
  }

  query(q: DocQuery): Doc[] {
    this.assertOpen();
    const { orderBy, after } = q;
    const field = orderBy?.field ?? 'id';
    const sign = orderBy?.direction === 'desc' ? -1 : 1;
    // (value, id): values in the query's direction, nullish first ascending (as SQLite), then ids ascending.
    const compare = (a: { value: OrderValue; id: string }, b: { value: OrderValue; id: string }): number => {
      if (field === 'id') return sign * compareCodePoints(a.id, b.id);
      return sign * compareValues(a.value, b.value) || compareCodePoints(a.id, b.id);
    };
    const positionOf = (doc: Doc): { value: OrderValue; id: string } => ({
      value: orderValueOf(doc, field),
      id: doc.id,
    });
    const docs = this.matching(q).filter((doc) => after === undefined || compare(positionOf(doc), after) > 0);
    docs.sort((a, b) => compare(positionOf(a), positionOf(b)));
    return docs.slice(0, Math.max(0, Math.floor(q.limit)));
  }

  count(q: Omit<DocQuery, 'limit' | 'orderBy' | 'after'>): number {
    this.assertOpen();
    return this.matching(q).length;
  }

  getMany(collection: string, ids: readonly string[], owner?: string): Doc[] {
    this.assertOpen();
    return [...new Set(ids)].flatMap((id) => {
      const d = this.data.docs.get(keyOf(collection, id));
      if (d === undefined || d.body === null || (owner !== undefined && d.owner !== owner)) return [];
      return [JSON.parse(d.body) as Doc];
    });
  }

  pruneServerOrigins(before: number, limit: number): number {
    this.assertOpen();
    const { serverOrigins, clients, rejections } = this.data;
    const old = [...serverOrigins]
      .filter(([, r]) => r.ts < before)
      .sort((a, b) => a[1].ts - b[1].ts)
      .slice(0, Math.max(0, Math.floor(limit)));
    // Undone with a transaction it runs in, like every other write here.
    return this.atomically(() => {
      for (const [origin, record] of old) {
        const lastSeq = clients.get(origin);
        serverOrigins.delete(origin);
        clients.delete(origin);
        const dropped = [...rejections].filter(([key]) => key.startsWith(`${origin}\u0000`));
        for (const [key] of dropped) rejections.delete(key);
        this.undo.push(() => {
          serverOrigins.set(origin, record);
          restore(clients, origin, lastSeq);
          for (const [key, error] of dropped) rejections.set(key, error);
        });
      }
      return old.length;
    });
  }

  /** Live documents of the query's collection and owner that pass its filters, unordered. */
  private matching(q: Omit<DocQuery, 'limit' | 'orderBy' | 'after'>): Doc[] {
    const matches = (doc: Doc): boolean =>
      q.filters.every((f) => {
        const v = doc[f.field];
        if (v === undefined || v === null || typeof v === 'object') return false;
        // The id is a string key in both stores (SQLite compares the id column as text).
        const x = f.field === 'id' ? String(f.value) : f.value;
        // A range compares within one kind: text with text, numbers (and booleans, as 1 and 0) with numbers.
        if (f.op !== 'eq' && f.op !== 'ne' && (typeof v === 'string') !== (typeof x === 'string')) return false;
        switch (f.op) {
          case 'eq':
            return v === x;
          case 'ne':
            return v !== x;
          case 'gt':
            return v > x;
          case 'gte':
            return v >= x;
          case 'lt':
            return v < x;
          case 'lte':
            return v <= x;
          case 'prefix':
            return typeof v === 'string' && v.startsWith(String(x));
        }
      });
    const docs: Doc[] = [];
    for (const d of this.data.docs.values()) {
      if (d.collection !== q.collection || d.body === null) continue;
      if (q.owner !== undefined && d.owner !== q.owner) continue;
      const doc = parseBody(d.body) as Doc;
      if (matches(doc)) docs.push(doc);
    }
    return docs;
  }

  logStats(): { count: number; oldestTs: number | null } {
    this.assertOpen();
    return { count: this.data.log.length, oldestTs: this.data.log[0]?.ts ?? null };
  }

  compact(upTo: number): { removedChanges: number; removedTombstones: number; horizon: number } {
    this.assertOpen();
    if (!Number.isSafeInteger(upTo))
      throw new TidelineError('BAD_REQUEST', `compact needs an integer LSN, got ${upTo}`);
    const data = this.data;
    const target = Math.min(upTo, data.headLsn);
    if (target <= data.horizon) return { removedChanges: 0, removedTombstones: 0, horizon: data.horizon };
    return this.atomically(() => {
      const { log, horizon } = data;
      const removedChanges = target - horizon;
      data.log = log.slice(removedChanges);
      data.horizon = target;
      this.undo.push(() => {
        data.log = log;
        data.horizon = horizon;
      });
      let removedTombstones = 0;
      for (const [key, d] of data.docs) {
        if (d.body === null && d.lsn <= target) {
          this.setDoc(key, undefined);
          removedTombstones++;
        }
      }
      return { removedChanges, removedTombstones, horizon: target };
    });
  }

  setTerm(term: number): void {
    this.assertOpen();
    const data = this.data;
    if (!Number.isSafeInteger(term) || term < data.term) {
      throw new TidelineError('INTERNAL', `cannot set the term to ${term}: the store is at term ${data.term}`, {
        hint: 'terms only rise; a node that meets a higher term steps down rather than lowering its own',
      });
    }
    if (term === data.term) return;
    this.atomically(() => {
      const before = data.term;
      const terms = data.terms;
      data.term = term;
      data.terms = [...terms, { term, startLsn: data.headLsn }];
      this.undo.push(() => {
        data.term = before;
        data.terms = terms;
      });
    });
  }

  terms(): TermStart[] {
    this.assertOpen();
    return this.data.terms.map((t) => ({ ...t }));
  }

  adoptTerms(terms: readonly TermStart[]): void {
    this.assertOpen();
    const last = terms[terms.length - 1];
    if (!last) throw new TidelineError('INTERNAL', 'cannot adopt an empty term history');
    this.data.terms = terms.map((t) => ({ ...t }));
    this.data.term = last.term;
  }

  applyReplicated(
    changes: readonly Change[],
    outcomes: readonly OutcomeEntry[] = [],
    bindings: Readonly<Record<string, string>> = {},
  ): void {
    this.assertOpen();
    const data = this.data;
    this.atomically(() => {
      for (const [clientId, userId] of Object.entries(bindings)) this.bind(clientId, userId);
      for (const entry of mergeByLsn(changes, outcomes)) {
        if (entry.lsn !== data.headLsn + 1) {
          throw new TidelineError('INTERNAL', `replicated entry ${entry.lsn} does not follow head ${data.headLsn}`);
        }
        if (!('collection' in entry)) {
          this.pushEntry(copyOutcome(entry));
          if (entry.seq > (data.clients.get(entry.clientId) ?? 0)) {
            this.recordOutcome(entry.clientId, entry.seq, entry.error);
          } else {
            this.settleReplicatedBelow(entry);
          }
          this.noteServerOrigin(entry.clientId, entry.lsn, entry.ts);
          continue;
        }
        const c = entry;
        const body = c.doc === null ? null : JSON.stringify(c.doc);
        const { doc: _doc, ...rest } = c;
        this.pushEntry({ ...rest, body });
        this.putDoc(c.collection, c.id, c.owner, c.lsn, body, c.clientId);
        if (c.clientId !== null && c.seq !== null && c.seq > (data.clients.get(c.clientId) ?? 0)) {
          const { clientId } = c;
          const prev = data.clients.get(clientId);
          data.clients.set(clientId, c.seq);
          this.undo.push(() => restore(data.clients, clientId, prev));
        }
        if (c.clientId !== null) this.noteServerOrigin(c.clientId, c.lsn, c.ts);
      }
    });
  }

  bindingsOf(clientIds: Iterable<string>): Record<string, string> {
    this.assertOpen();
    const out: Record<string, string> = {};
    for (const clientId of clientIds) {
      const userId = this.data.clientUsers.get(clientId);
      if (userId !== undefined) out[clientId] = userId;
    }
    return out;
  }

  clusterId(): string | null {
    this.assertOpen();
    return this.data.clusterId ?? null;
  }

  setClusterId(clusterId: string): void {
    this.assertOpen();
    this.data.clusterId = clusterId;
  }

  exportSnapshot(): ReplicaSnapshot {
    this.assertOpen();
    const docs: ReplicaSnapshot['docs'] = [];
    for (const d of this.data.docs.values()) {
      if (d.body !== null)
        docs.push({
          collection: d.collection,
          id: d.id,
          owner: d.owner,
          lsn: d.lsn,
          doc: parseBody(d.body),
          author: d.author,
        });
    }
    docs.sort((a, b) => compareCodePoints(a.collection, b.collection) || compareCodePoints(a.id, b.id));
    const rejections: ReplicaSnapshot['rejections'] = [];
    for (const [key, error] of this.data.rejections) {
      const [clientId, seqText] = key.split('\u0000') as [string, string];
      const seq = Number(seqText);
      if (seq > (this.data.clients.get(clientId) ?? 0) - REJECTION_WINDOW)
        rejections.push({ clientId, seq, error: { ...error } });
    }
    rejections.sort((a, b) => compareCodePoints(a.clientId, b.clientId) || a.seq - b.seq);
    return {
      asOf: this.data.headLsn,
      terms: this.terms(),
      docs,
      clients: [...this.data.clients]
        .filter(([clientId, lastSeq]) => lastSeq > 0 || this.data.clientUsers.has(clientId))
        .map(([clientId, lastSeq]) => {
          const userId = this.data.clientUsers.get(clientId);
          return userId === undefined ? { clientId, lastSeq } : { clientId, lastSeq, userId };
        }),
      rejections,
    };
  }

  importSnapshot(snapshot: ReplicaSnapshot): void {
    this.assertOpen();
    const last = snapshot.terms[snapshot.terms.length - 1];
    if (!last) throw new TidelineError('INTERNAL', 'a snapshot needs a term history');
    const data = this.data;
    data.docs.clear();
    data.clients.clear();
    data.clientUsers.clear();
    data.rejections.clear();
    data.serverOrigins.clear();
    data.usage.clear();
    for (const d of snapshot.docs) {
      const body = d.doc === null ? null : JSON.stringify(d.doc);
      const author = body === null ? null : (d.author ?? d.owner);
      data.docs.set(keyOf(d.collection, d.id), {
        collection: d.collection,
        id: d.id,
        owner: d.owner,
        lsn: d.lsn,
        body,
        author,
      });
      // Usage is rebuilt from the documents, as the SQLite store does.
      if (author !== null && body !== null) addUsage(data.usage, d.collection, author, 1, byteLength(body));
    }
    for (const c of snapshot.clients) {
      data.clients.set(c.clientId, c.lastSeq);
      if (c.userId !== undefined) data.clientUsers.set(c.clientId, c.userId);
    }
    for (const r of snapshot.rejections) {
      data.rejections.set(rejectionKey(r.clientId, r.seq), { ...storedRejection(r.error) });
    }
    data.log = [];
    data.headLsn = snapshot.asOf;
    data.horizon = snapshot.asOf;
    data.terms = snapshot.terms.map((t) => ({ ...t }));
    data.term = last.term;
  }

  close(): void {
    this.closed = true;
  }

  /**
   * Opens a transaction that stays open until the returned `end` is called,
   * for the `AsyncStore` adapter (sync-store-adapter.ts): every write until
   * then joins it (`transact` nests in it); `end(false)` undoes them all. The
   * caller keeps every other user off the store meanwhile.
   */
  holdTransaction(): (commit: boolean) => void {
    this.assertOpen();
    const mark = this.undo.length;
    this.depth++;
    let open = true;
    return (commit) => {
      if (!open) return;
      open = false;
      if (!commit) while (this.undo.length > mark) this.undo.pop()?.();
      this.depth--;
      if (this.depth === 0) this.undo.length = 0;
    };
  }

  private atomically<T>(fn: () => T): T {
    const mark = this.undo.length;
    this.depth++;
    try {
      const result = fn();
      // Mirrors better-sqlite3: the awaited part of an async fn would run outside the transaction.
      if (isThenable(result)) throw new TypeError('Transaction function cannot return a promise');
      return result;
    } catch (err) {
      while (this.undo.length > mark) this.undo.pop()?.();
      throw err;
    } finally {
      this.depth--;
      if (this.depth === 0) this.undo.length = 0;
    }
  }

  private append(write: Write, origin: { clientId: string; seq: number } | null, ts: number): Change {
    checkWrite(write);
    const data = this.data;
    const lsn = data.headLsn + 1;
    const body = write.doc === null ? null : JSON.stringify(write.doc);
    const change: MemoryChange = {
      lsn,
      term: data.term,
      collection: write.collection,
      id: write.id,
      owner: write.owner,
      clientId: origin?.clientId ?? null,
      seq: origin?.seq ?? null,
      ts,
      body,
    };
    this.pushEntry(change);
    this.putDoc(write.collection, write.id, write.owner, lsn, body, change.clientId);
    if (change.clientId !== null) this.noteServerOrigin(change.clientId, lsn, ts);
    return {
      lsn,
      term: change.term,
      collection: write.collection,
      id: write.id,
      doc: write.doc,
      owner: write.owner,
      clientId: change.clientId,
      seq: change.seq,
      ts,
    };
  }

  /** Appends an entry with the next LSN; undone with the transaction. */
  private pushEntry(entry: MemoryEntry): void {
    const data = this.data;
    data.log.push(entry);
    data.headLsn = entry.lsn;
    this.undo.push(() => {
      data.log.pop();
      data.headLsn = entry.lsn - 1;
    });
  }

  /** Binds a client id to a user (a row of last seq 0 when new); undone with the transaction. */
  private bind(clientId: string, userId: string): void {
    const { clients, clientUsers } = this.data;
    const prevSeq = clients.get(clientId);
    const prevUser = clientUsers.get(clientId);
    if (prevSeq === undefined) clients.set(clientId, 0);
    clientUsers.set(clientId, userId);
    this.undo.push(() => {
      restore(clients, clientId, prevSeq);
      restore(clientUsers, clientId, prevUser);
    });
  }

  /** See `SqliteStore.settleReplicatedBelow`: the primary's rejection row, kept or dropped; last seq unchanged. */
  private settleReplicatedBelow(o: OutcomeEntry): void {
    const { rejections } = this.data;
    if (o.seq <= (this.data.clients.get(o.clientId) ?? 0) - REJECTION_WINDOW) return;
    const key = rejectionKey(o.clientId, o.seq);
    const prev = rejections.get(key);
    if (o.error === null) rejections.delete(key);
    else rejections.set(key, { ...storedRejection(o.error) });
    this.undo.push(() => restore(rejections, key, prev));
  }

  private recordOutcome(clientId: string, seq: number, rejection: WireErrorShape | null): void {
    const { clients, rejections } = this.data;
    const prevSeq = clients.get(clientId);
    clients.set(clientId, seq);
    const key = rejectionKey(clientId, seq);
    const prevRejection = rejections.get(key);
    if (rejection === null) rejections.delete(key);
    else rejections.set(key, { ...storedRejection(rejection) });
    this.undo.push(() => {
      restore(clients, clientId, prevSeq);
      restore(rejections, key, prevRejection);
    });
    // Only the newest REJECTION_WINDOW seqs keep theirs: drop those that just fell out of the window.
    const before = prevSeq ?? 0;
    if (seq > before) this.dropRejections(clientId, Math.max(1, before - REJECTION_WINDOW + 1), seq - REJECTION_WINDOW);
  }

  /** Drops the client's rejections of seqs `from..to`; undone with the transaction. */
  private dropRejections(clientId: string, from: number, to: number): void {
    const { rejections } = this.data;
    const dropped: Array<[string, WireErrorShape]> = [];
    const drop = (key: string): void => {
      const r = rejections.get(key);
      if (r === undefined) return;
      rejections.delete(key);
      dropped.push([key, r]);
    };
    if (to - from > REJECTION_WINDOW) {
      // A long jump (a hello settling a gap): look at the client's rows rather than every seq of the range.
      for (const key of [...rejections.keys()]) {
        const [id, seqText] = key.split('\u0000') as [string, string];
        const seq = Number(seqText);
        if (id === clientId && seq >= from && seq <= to) drop(key);
      }
    } else {
      for (let seq = from; seq <= to; seq++) drop(rejectionKey(clientId, seq));
    }
    if (dropped.length > 0) {
      this.undo.push(() => {
        for (const [key, r] of dropped) rejections.set(key, r);
      });
    }
  }

  /** A keyed server write's record: the LSN its outcome ends at, and its commit time; undone with the transaction. */
  private noteServerOrigin(clientId: string, lsn: number, ts: number): void {
    if (!isServerOrigin(clientId)) return;
    const { serverOrigins } = this.data;
    const prev = serverOrigins.get(clientId);
    serverOrigins.set(clientId, { lsn: Math.max(lsn, prev?.lsn ?? 0), ts: prev?.ts ?? ts });
    this.undo.push(() => restore(serverOrigins, clientId, prev));
  }

  /**
   * Makes a change the document's current version and moves its bytes
   * between authors' usage (the rule of `authorOf`, as the SQLite store
   * applies it); undone with the transaction.
   */
  private putDoc(
    collection: string,
    id: string,
    owner: string | null,
    lsn: number,
    body: string | null,
    clientId: string | null,
  ): void {
    const key = keyOf(collection, id);
    const prev = this.data.docs.get(key);
    const live = prev !== undefined && prev.body !== null ? prev : undefined;
    let author: string | null = null;
    if (body !== null) {
      const originUser = clientId === null ? null : (this.data.clientUsers.get(clientId) ?? null);
      author = live !== undefined ? live.author : authorOf(owner, originUser);
    }
    if (live?.author != null && live.body !== null) this.moveUsage(collection, live.author, -1, -byteLength(live.body));
    if (author !== null && body !== null) this.moveUsage(collection, author, 1, byteLength(body));
    this.setDoc(key, { collection, id, owner, lsn, body, author });
  }

  private moveUsage(collection: string, userId: string, docs: number, bytes: number): void {
    const { usage } = this.data;
    const key = keyOf(collection, userId);
    const prev = usage.get(key);
    addUsage(usage, collection, userId, docs, bytes);
    this.undo.push(() => restore(usage, key, prev));
  }

  private setDoc(key: string, doc: MemoryDoc | undefined): void {
    const docs = this.data.docs;
    const prev = docs.get(key);
    restore(docs, key, doc);
    this.undo.push(() => restore(docs, key, prev));
  }

  private assertOpen(): void {
    if (this.closed) throw new TidelineError('INTERNAL', `the memory store ${this.data.serverId} is closed`);
  }
}

/** Refuses a document stored under another id, as the SQLite store does. */
function checkWrite(write: Write): void {
  if (write.doc !== null && write.doc.id !== write.id) {
    throw new TidelineError(
      'INTERNAL',
      `cannot store ${write.collection}/${write.id}: the document's id is '${write.doc.id}'`,
    );
  }
}

/** Adds to an author's usage, dropping the entry when it holds nothing (entries exist only for holders). */
function addUsage(usage: Map<string, Usage>, collection: string, userId: string, docs: number, bytes: number): void {
  const key = keyOf(collection, userId);
  const prev = usage.get(key) ?? { docs: 0, bytes: 0 };
  const next = { docs: prev.docs + docs, bytes: prev.bytes + bytes };
  if (next.docs <= 0) usage.delete(key);
  else usage.set(key, next);
}

const encoder = new TextEncoder();

/** A body's size as UTF-8, as `jsonByteLength` counts the document. */
function byteLength(body: string): number {
  return encoder.encode(body).length;
}

function restore<K, V>(map: Map<K, V>, key: K, value: V | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}

/** Nullish first; otherwise JavaScript's order (the SQLite store agrees for values of one type). */
function compareValues(x: OrderValue, y: OrderValue): number {
  if (x === y) return 0;
  if (x === null) return -1;
  if (y === null) return 1;
  if (typeof x === 'string' && typeof y === 'string') return compareCodePoints(x, y);
  return x < y ? -1 : x > y ? 1 : 0;
}

function parseBody(body: string | null): Doc | null {
  return body === null ? null : (JSON.parse(body) as Doc);
}

function isThenable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Orders strings by code point, as SQLite's BINARY collation orders their
 * UTF-8 bytes. Plain `<` compares UTF-16 units, which puts characters above
 * U+FFFF (surrogate pairs) before U+E000–U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
