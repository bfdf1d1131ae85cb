import Dexie from 'dexie';
import type { Table, Transaction } from 'dexie';
import type { Doc } from '../../shared/json';
import type { AppSchema } from '../../shared/schema/define-schema';
import { ALL_TABLES, UnknownCollectionError } from '../sync/local-store';
import type {
  LocalMeta,
  LocalStore,
  LocalTable,
  LocalTx,
  OutboxEntry,
  RejectionRecord,
  ShadowEntry,
  TxScope,
} from '../sync/local-store';

interface MetaRow extends LocalMeta {
  key: 'meta';
}
interface StagedRow {
  n?: number;
  collection: string;
  doc: Doc;
}

const INTERNAL = { _outbox: 'seq', _shadow: 'key', _meta: 'key', _staging: '++n', _rejections: 'seq' } as const;

const INTERNAL_TABLE: Readonly<Record<Exclude<LocalTable, 'docs'>, keyof typeof INTERNAL>> = {
  shadow: '_shadow',
  outbox: '_outbox',
  meta: '_meta',
  rejections: '_rejections',
  staging: '_staging',
};

/** Dexie store definitions: one table per collection, keyed by id, with the schema's indexes. */
export function dexieStores(schema: AppSchema): Record<string, string> {
  const stores: Record<string, string> = { ...INTERNAL };
  for (const [name, def] of Object.entries(schema.collections)) {
    const indexes = def.indexes.map((i) => (i.includes('+') ? `[${i}]` : i));
    stores[name] = ['id', ...indexes].join(', ');
  }
  return stores;
}

/** Opens (creating or upgrading) the Dexie database of one app and user. */
export function openDexie(schema: AppSchema, dbName: string): Dexie {
  const db = new Dexie(dbName);
  db.version(schema.version).stores(dexieStores(schema));
  return db;
}

/**
 * The browser replica on IndexedDB. A local write's transaction spans the
 * documents, shadow, outbox and meta, so the outbox and the data always
 * change together (as dexie-cloud's mutation tracking middleware does);
 * reads take read-only transactions over only what they read.
 */
export class DexieLocalStore implements LocalStore {
  private readonly collections: ReadonlySet<string>;
  /** Set once the meta row is known to exist, so read-only transactions can return it. */
  private metaReady: Promise<void> | null = null;

  constructor(
    readonly db: Dexie,
    schema: AppSchema,
    private readonly newClientId: () => string,
  ) {
    this.collections = new Set(Object.keys(schema.collections));
  }

  /**
   * Runs `fn` in one transaction over the IndexedDB tables of `scope`
   * (default: read-write over every table). Tables are taken from the
   * transaction object rather than from Dexie's ambient zone, so the code
   * inside may await ordinary promises between requests.
   */
  async transaction<T>(fn: (tx: LocalTx) => Promise<T>, scope?: TxScope): Promise<T> {
    const mode = scope?.mode ?? 'rw';
    const tables = this.tableNames(scope?.tables ?? ALL_TABLES);
    if (mode === 'r' && tables.includes('_meta')) await this.ensureMeta();
    return this.db.transaction(mode, tables, (trans) => fn(this.boundTx(trans)));
  }

  private tableNames(tables: readonly LocalTable[]): string[] {
    const names: string[] = [];
    for (const t of tables) {
      if (t === 'docs') names.push(...this.collections);
      else names.push(INTERNAL_TABLE[t]);
    }
    return names;
  }

  /** A new replica's meta row is created in a read-write transaction, once, before any read-only one reads it. */
  private ensureMeta(): Promise<void> {
    this.metaReady ??= this.db
      .transaction('rw', '_meta', (trans) => this.boundTx(trans).meta())
      .then(
        () => undefined,
        (err: unknown) => {
          this.metaReady = null;
          throw err;
        },
      );
    return this.metaReady;
  }

  private boundTx(trans: Transaction): LocalTx {
    // Looked up at use: a table outside the transaction's scope fails only if it is used.
    const table =
      <R>(name: string) =>
      (): Table<R, unknown> =>
        trans.table<R, unknown>(name);
    const docs = (collection: string): Table<Doc, string> => {
      if (!this.collections.has(collection)) throw new UnknownCollectionError(collection);
      return trans.table<Doc, string>(collection);
    };
    const outbox = table<OutboxEntry>('_outbox');
    const shadow = table<ShadowEntry>('_shadow');
    const meta = table<MetaRow>('_meta');
    const staging = table<StagedRow>('_staging');
    const rejections = table<RejectionRecord>('_rejections');
    return {
      getDoc: (c, id) => docs(c).get(id),
      getDocs: async (refs) => {
        // One bulkGet per collection, answers put back in the order asked.
        const out = new Array<Doc | undefined>(refs.length);
        const byCollection = new Map<string, number[]>();
        refs.forEach((r, i) => {
          let at = byCollection.get(r.collection);
          if (!at) byCollection.set(r.collection, (at = []));
          at.push(i);
        });
        for (const [c, at] of byCollection) {
          const got = await docs(c).bulkGet(at.map((i) => refs[i]?.id ?? ''));
          at.forEach((i, j) => (out[i] = got[j]));
        }
        return out;
      },
      putDoc: async (c, doc) => {
        await docs(c).put(doc);
      },
      deleteDoc: (c, id) => docs(c).delete(id),
      clearDocs: async () => {
        for (const c of this.collections) await docs(c).clear();
      },
      applyDocs: async (writes) => {
        // Last write per key wins; then one bulkPut and one bulkDelete per collection.
        const byCollection = new Map<string, Map<string, Doc | null>>();
        for (const w of writes) {
          let m = byCollection.get(w.collection);
          if (!m) byCollection.set(w.collection, (m = new Map<string, Doc | null>()));
          m.delete(w.id);
          m.set(w.id, w.doc);
        }
        for (const [c, m] of byCollection) {
          const puts: Doc[] = [];
          const deletes: string[] = [];
          for (const [id, doc] of m) {
            if (doc) puts.push(doc);
            else deletes.push(id);
          }
          if (puts.length > 0) await docs(c).bulkPut(puts);
          if (deletes.length > 0) await docs(c).bulkDelete(deletes);
        }
      },
      shadow: () => shadow().toArray(),
      hasShadow: async (key) => (await shadow().where('key').equals(key).count()) > 0,
      shadowEntries: async (keys) =>
        (await shadow().bulkGet([...keys])).filter((e): e is ShadowEntry => e !== undefined),
      deleteShadow: (keys) => shadow().bulkDelete([...keys]),
      putShadow: async (entry) => {
        await shadow().put(entry);
      },
      addShadows: async (entries) => {
        if (entries.length === 0) return;
        // add() fails for a key that has an entry, which is what keeps it; Dexie keeps the transaction
        // going and reports the failures together, and only those failures are expected here.
        await shadow()
          .bulkAdd([...entries])
          .catch((err: unknown) => {
            const failures = err instanceof Dexie.BulkError ? Object.values(err.failuresByPos) : [err];
            if (failures.some((f) => !(f instanceof Error) || f.name !== 'ConstraintError')) throw err;
          });
      },
      bulkPutShadow: async (entries) => {
        if (entries.length > 0) await shadow().bulkPut([...entries]);
      },
      shadowedKeys: async (keys) =>
        keys.length === 0
          ? []
          : (
              await shadow()
                .where('key')
                .anyOf([...keys])
                .primaryKeys()
            ).map(String),
      clearShadow: () => shadow().clear(),
      outbox: () => outbox().orderBy('seq').toArray(),
      outboxCount: () => outbox().count(),
      outboxAfter: (seq, limit) => outbox().where('seq').above(seq).limit(limit).toArray(),
      putOutbox: async (entry) => {
        await outbox().put(entry);
      },
      bulkPutOutbox: async (entries) => {
        if (entries.length > 0) await outbox().bulkPut([...entries]);
      },
      deleteOutbox: async (seqs) => {
        // Settled mutations are a run of consecutive seqs: one range delete instead of a request per seq.
        const run = consecutiveRun(seqs);
        if (run) await outbox().where('seq').between(run.from, run.to, true, true).delete();
        else await outbox().bulkDelete([...seqs]);
      },
      meta: async () => {
        const row = await meta().get('meta');
        if (row) {
          const { key: _key, ...rest } = row;
          return rest;
        }
        const fresh: MetaRow = {
          key: 'meta',
          clientId: this.newClientId(),
          checkpoint: 0,
          checkpointTerm: 0,
          nextSeq: 1,
          lastSyncedAt: null,
        };
        await meta().put(fresh);
        const { key: _key, ...rest } = fresh;
        return rest;
      },
      setMeta: async (m) => {
        await meta().put({ ...m, key: 'meta' });
      },
      addRejection: async (r) => {
        await rejections().put(r);
      },
      stage: async (docs) => {
        await staging().bulkAdd(docs.map((d) => ({ collection: d.collection, doc: d.doc })));
      },
      staged: async () => (await staging().orderBy('n').toArray()).map(({ collection, doc }) => ({ collection, doc })),
      clearStaging: () => staging().clear(),
    };
  }

  rejections(): Promise<RejectionRecord[]> {
    return this.db.table<RejectionRecord>('_rejections').orderBy('seq').toArray();
  }

  close(): void {
    this.db.close();
  }
}

/** `{from, to}` when `seqs` are exactly the integers from..to (in any order, no repeats); else null. */
export function consecutiveRun(seqs: readonly number[]): { from: number; to: number } | null {
  if (seqs.length < 2) return null;
  let from = Infinity;
  let to = -Infinity;
  for (const s of seqs) {
    if (!Number.isSafeInteger(s)) return null;
    from = Math.min(from, s);
    to = Math.max(to, s);
  }
  if (to - from + 1 !== seqs.length || new Set(seqs).size !== seqs.length) return null;
  return { from, to };
}
