import type { Doc } from '../../shared/json';
import type { AppSchema } from '../../shared/schema/define-schema';
import { TX_METHODS, TxScopeError, UnknownCollectionError } from '../sync/local-store';
import type {
  LocalMeta,
  LocalStore,
  LocalTx,
  OutboxEntry,
  RejectionRecord,
  ShadowEntry,
  TxScope,
} from '../sync/local-store';

interface State {
  docs: Map<string, Map<string, Doc>>;
  shadow: Map<string, ShadowEntry>;
  outbox: Map<number, OutboxEntry>;
  meta: LocalMeta | null;
  rejections: RejectionRecord[];
  staging: Array<{ collection: string; doc: Doc }>;
}

function cloneState(s: State): State {
  return structuredClone(s);
}

/**
 * An in-memory `LocalStore` with the same contract as the Dexie one: the
 * deterministic simulation runs thousands of clients on it. Transactions run
 * one at a time on a copy of the state that replaces it only on success.
 */
export class MemoryLocalStore implements LocalStore {
  private state: State;
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    schema: AppSchema,
    private readonly newClientId: () => string,
  ) {
    this.state = {
      docs: new Map(Object.keys(schema.collections).map((c) => [c, new Map<string, Doc>()])),
      shadow: new Map(),
      outbox: new Map(),
      meta: null,
      rejections: [],
      staging: [],
    };
  }

  /** Every visible document, for convergence checks. */
  dump(): Record<string, Record<string, Doc>> {
    const out: Record<string, Record<string, Doc>> = {};
    for (const [c, docs] of this.state.docs) out[c] = Object.fromEntries(docs);
    return out;
  }

  transaction<T>(fn: (tx: LocalTx) => Promise<T>, scope?: TxScope): Promise<T> {
    const run = async (): Promise<T> => {
      const s = cloneState(this.state);
      const docs = (c: string): Map<string, Doc> => {
        const m = s.docs.get(c);
        if (!m) throw new UnknownCollectionError(c);
        return m;
      };
      const tx: LocalTx = {
        getDoc: async (c, id) => structuredClone(docs(c).get(id)),
        getDocs: async (refs) => refs.map((r) => structuredClone(docs(r.collection).get(r.id))),
        putDoc: async (c, doc) => void docs(c).set(doc.id, structuredClone(doc)),
        deleteDoc: async (c, id) => void docs(c).delete(id),
        clearDocs: async () => {
          for (const m of s.docs.values()) m.clear();
        },
        applyDocs: async (writes) => {
          for (const w of writes) {
            if (w.doc) docs(w.collection).set(w.id, structuredClone(w.doc));
            else docs(w.collection).delete(w.id);
          }
        },
        shadowEntries: async (keys) =>
          structuredClone(keys.map((k) => s.shadow.get(k)).filter((e): e is ShadowEntry => e !== undefined)),
        deleteShadow: async (keys) => {
          for (const k of keys) s.shadow.delete(k);
        },
        shadow: async () => structuredClone([...s.shadow.values()]),
        hasShadow: async (key) => s.shadow.has(key),
        putShadow: async (e) => void s.shadow.set(e.key, structuredClone(e)),
        shadowedKeys: async (keys) => keys.filter((k) => s.shadow.has(k)),
        addShadows: async (entries) => {
          for (const e of entries) if (!s.shadow.has(e.key)) s.shadow.set(e.key, structuredClone(e));
        },
        bulkPutShadow: async (entries) => {
          for (const e of entries) s.shadow.set(e.key, structuredClone(e));
        },
        clearShadow: async () => s.shadow.clear(),
        outbox: async () => structuredClone([...s.outbox.values()].sort((a, b) => a.seq - b.seq)),
        outboxCount: async () => s.outbox.size,
        outboxAfter: async (seq, limit) =>
          structuredClone(
            [...s.outbox.values()]
              .filter((e) => e.seq > seq)
              .sort((a, b) => a.seq - b.seq)
              .slice(0, limit),
          ),
        putOutbox: async (e) => void s.outbox.set(e.seq, structuredClone(e)),
        bulkPutOutbox: async (entries) => {
          for (const e of entries) s.outbox.set(e.seq, structuredClone(e));
        },
        deleteOutbox: async (seqs) => {
          for (const seq of seqs) s.outbox.delete(seq);
        },
        meta: async () => {
          s.meta ??= { clientId: this.newClientId(), checkpoint: 0, checkpointTerm: 0, nextSeq: 1, lastSyncedAt: null };
          return { ...s.meta };
        },
        setMeta: async (m) => {
          s.meta = { ...m };
        },
        addRejection: async (r) => {
          // Keyed by seq like the Dexie store: a second record for a seq replaces the first.
          s.rejections = [...s.rejections.filter((x) => x.seq !== r.seq), structuredClone(r)].sort(
            (a, b) => a.seq - b.seq,
          );
        },
        stage: async (d) => void s.staging.push(...structuredClone(d)),
        staged: async () => structuredClone(s.staging),
        clearStaging: async () => {
          s.staging = [];
        },
      };
      const result = await fn(scope ? scopedTx(tx, scope) : tx);
      this.state = s;
      return result;
    };
    const next = this.lock.then(run, run);
    this.lock = next.catch(() => undefined);
    return next;
  }

  async rejections(): Promise<RejectionRecord[]> {
    return structuredClone(this.state.rejections);
  }

  close(): void {}
}

/**
 * `tx` limited to `scope`, as IndexedDB limits a transaction to its tables
 * and mode: the engine's tests run on this store, so a scope that misses a
 * table fails there and not only in a browser.
 */
export function scopedTx(tx: LocalTx, scope: TxScope): LocalTx {
  const out = { ...tx } as Record<keyof LocalTx, unknown>;
  for (const method of Object.keys(tx) as Array<keyof LocalTx>) {
    const use = TX_METHODS[method];
    if (scope.tables.includes(use.table) && (scope.mode === 'rw' || !use.writes)) continue;
    out[method] = () => Promise.reject(new TxScopeError(method, scope));
  }
  return out as unknown as LocalTx;
}
