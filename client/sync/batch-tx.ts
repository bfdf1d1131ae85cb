import type { Doc, JsonValue } from '../../shared/json';
import type { AppSchema } from '../../shared/schema/define-schema';
import { docKey } from './local-store';
import type { LocalMeta, LocalTx, OutboxEntry, ShadowEntry } from './local-store';

/**
 * The `LocalTx` a batch of local mutations runs on: reads go to the store
 * once per key and are then served from memory, together with what earlier
 * mutations of the batch wrote; writes are held and sent at the end, all at
 * once (`flush`).
 *
 * Why: in a browser every IndexedDB request a transaction awaits is a round
 * trip to another process. A mutation run straight on the store awaits five
 * or six of them (read the document, check the shadow, write shadow,
 * document, outbox, meta), one after the other; here a batch awaits about
 * three in all when its keys are known up front (`prefetch`), and the writes
 * go out as bulk requests.
 *
 * Only what a local write batch uses is available; anything else throws,
 * so a new `LocalTx` method must be thought through here (it would
 * otherwise bypass the buffered writes).
 */
export class BatchTx {
  /** Visible documents known to this batch (null: absent), read or written. */
  private readonly docs = new Map<string, Doc | null>();
  private readonly dirtyDocs = new Map<string, { collection: string; id: string; doc: Doc | null }>();
  /** Whether each key has a shadow entry, as far as this batch knows. */
  private readonly shadowed = new Map<string, boolean>();
  private readonly dirtyShadow = new Map<string, ShadowEntry>();
  private readonly outbox: OutboxEntry[] = [];
  private metaRow: LocalMeta | null = null;
  private metaDirty = false;
  readonly tx: LocalTx;

  constructor(private readonly inner: LocalTx) {
    const unavailable = (method: string) => (): Promise<never> =>
      Promise.reject(new Error(`${method}() is not available to a batch of local writes`));
    this.tx = {
      getDoc: (c, id) => this.getDoc(c, id),
      getDocs: (refs) => this.getDocs(refs),
      putDoc: async (c, doc) => this.writeDoc(c, doc.id, doc),
      deleteDoc: async (c, id) => this.writeDoc(c, id, null),
      hasShadow: (key) => this.hasShadow(key),
      putShadow: async (entry) => {
        if (this.dirtyShadow.has(entry.key)) return;
        this.shadowed.set(entry.key, true);
        this.dirtyShadow.set(entry.key, entry);
      },
      // Called by applyLocal for what it overwrites that it does not know to be shadowed: the first
      // entry of a key in this batch is kept, and the store keeps one it already had (addShadows).
      bulkPutShadow: async (entries) => {
        for (const entry of entries) {
          if (this.dirtyShadow.has(entry.key)) continue;
          this.shadowed.set(entry.key, true);
          this.dirtyShadow.set(entry.key, entry);
        }
      },
      addShadows: unavailable('addShadows'),
      shadowedKeys: (keys) => this.shadowedKeys(keys),
      bulkPutOutbox: unavailable('bulkPutOutbox'),
      putOutbox: async (entry) => {
        this.outbox.push(entry);
      },
      meta: async () => {
        this.metaRow ??= await this.inner.meta();
        return { ...this.metaRow };
      },
      setMeta: async (meta) => {
        this.metaRow = { ...meta };
        this.metaDirty = true;
      },
      clearDocs: unavailable('clearDocs'),
      applyDocs: async (writes) => {
        for (const w of writes) this.writeDoc(w.collection, w.id, w.doc);
      },
      shadow: unavailable('shadow'),
      shadowEntries: unavailable('shadowEntries'),
      deleteShadow: unavailable('deleteShadow'),
      clearShadow: unavailable('clearShadow'),
      outbox: unavailable('outbox'),
      outboxCount: unavailable('outboxCount'),
      outboxAfter: unavailable('outboxAfter'),
      deleteOutbox: unavailable('deleteOutbox'),
      addRejection: unavailable('addRejection'),
      stage: unavailable('stage'),
      staged: unavailable('staged'),
      clearStaging: unavailable('clearStaging'),
    };
  }

  /**
   * Reads these documents and whether they are shadowed, all requests at
   * once. A read that fails is left for the mutation that needs it, so the
   * failure is that mutation's alone.
   */
  async prefetch(keys: ReadonlyArray<{ collection: string; id: string }>): Promise<void> {
    const todo = keys.filter((k) => !this.docs.has(docKey(k.collection, k.id)));
    await Promise.all([
      this.inner.meta().then((m) => void (this.metaRow ??= m)),
      todo.length === 0
        ? undefined
        : this.inner.getDocs(todo).then(
            (docs) =>
              todo.forEach(({ collection, id }, i) => {
                const key = docKey(collection, id);
                if (!this.docs.has(key)) this.docs.set(key, docs[i] ?? null);
              }),
            () => undefined,
          ),
    ]);
  }

  /** Sends every held write to the store, as bulk requests issued together. */
  async flush(): Promise<void> {
    const writes: Array<Promise<void>> = [];
    if (this.dirtyDocs.size > 0) writes.push(this.inner.applyDocs([...this.dirtyDocs.values()]));
    if (this.dirtyShadow.size > 0) writes.push(this.inner.addShadows([...this.dirtyShadow.values()]));
    if (this.outbox.length > 0) writes.push(this.inner.bulkPutOutbox(this.outbox));
    if (this.metaDirty && this.metaRow) writes.push(this.inner.setMeta(this.metaRow));
    await Promise.all(writes);
  }

  private async getDoc(collection: string, id: string): Promise<Doc | undefined> {
    const key = docKey(collection, id);
    if (!this.docs.has(key)) this.docs.set(key, (await this.inner.getDoc(collection, id)) ?? null);
    const doc = this.docs.get(key);
    // A copy, as the store would give: the caller may keep or change it.
    return doc ? structuredClone(doc) : undefined;
  }

  /** Reads what this batch does not know yet in one bulk request; copies, as the store would give. */
  private async getDocs(refs: ReadonlyArray<{ collection: string; id: string }>): Promise<Array<Doc | undefined>> {
    const unknown = refs.filter((r) => !this.docs.has(docKey(r.collection, r.id)));
    if (unknown.length > 0) {
      const loaded = await this.inner.getDocs(unknown);
      unknown.forEach((r, i) => {
        const key = docKey(r.collection, r.id);
        if (!this.docs.has(key)) this.docs.set(key, loaded[i] ?? null);
      });
    }
    return refs.map((r) => {
      const doc = this.docs.get(docKey(r.collection, r.id));
      return doc ? structuredClone(doc) : undefined;
    });
  }

  /**
   * The keys this batch has shadowed. It does not ask the store: whatever
   * applyLocal then shadows is added only where the store has no entry
   * (`flush` uses addShadows), which saves a read per written document.
   */
  private async shadowedKeys(keys: readonly string[]): Promise<string[]> {
    return keys.filter((k) => this.shadowed.get(k) === true);
  }

  private writeDoc(collection: string, id: string, doc: Doc | null): void {
    const key = docKey(collection, id);
    const copy = doc ? structuredClone(doc) : null;
    this.docs.set(key, copy);
    this.dirtyDocs.delete(key);
    this.dirtyDocs.set(key, { collection, id, doc: copy });
  }

  private async hasShadow(key: string): Promise<boolean> {
    let known = this.shadowed.get(key);
    if (known === undefined) {
      known = await this.inner.hasShadow(key);
      this.shadowed.set(key, known);
    }
    return known;
  }
}

/**
 * The document a built-in mutation (`put`, `patch`, `delete`, `inc`) is about,
 * read from its arguments; null for anything else. A hint for prefetching
 * only: the mutation is checked when it runs.
 */
export function builtinTarget(schema: AppSchema, args: JsonValue): { collection: string; id: string } | null {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return null;
  const collection = args['collection'];
  if (typeof collection !== 'string' || !Object.hasOwn(schema.collections, collection)) return null;
  const doc = args['doc'];
  const id =
    typeof args['id'] === 'string'
      ? args['id']
      : typeof doc === 'object' && doc !== null && !Array.isArray(doc) && typeof doc['id'] === 'string'
        ? doc['id']
        : null;
  return id === null ? null : { collection, id };
}
