import { MemoryLocalStore } from '../../client/store/memory-local-store';
import type { LocalStore, LocalTx, RejectionRecord, ShadowEntry } from '../../client/sync/local-store';
import type { AppSchema } from '../../shared/schema/define-schema';
import type { DocsView } from './server-history';

/**
 * A `MemoryLocalStore` that remembers the shadow as of its last committed
 * transaction, so a check can read the confirmed data synchronously, from
 * inside an engine event, without a transaction of its own.
 */
export class ObservedLocalStore implements LocalStore {
  readonly inner: MemoryLocalStore;
  transactions = 0;
  private shadow: ShadowEntry[] = [];

  constructor(schema: AppSchema, newClientId: () => string) {
    this.inner = new MemoryLocalStore(schema, newClientId);
  }

  transaction<T>(fn: (tx: LocalTx) => Promise<T>): Promise<T> {
    this.transactions++;
    return this.inner.transaction(async (tx) => {
      const result = await fn(tx);
      // Transactions run one at a time and this one can no longer fail: this is the shadow it commits.
      this.shadow = await tx.shadow();
      return result;
    });
  }

  rejections(): Promise<RejectionRecord[]> {
    return this.inner.rejections();
  }

  close(): void {
    this.inner.close();
  }

  /** Every visible document. */
  dump(): DocsView {
    return this.inner.dump();
  }

  /** The confirmed data: the visible documents with the pending mutations' writes undone. */
  confirmed(): DocsView {
    const view: DocsView = {};
    for (const [collection, docs] of Object.entries(this.inner.dump())) view[collection] = { ...docs };
    for (const s of this.shadow) {
      const docs = (view[s.collection] ??= {});
      if (s.doc === null) delete docs[s.id];
      else docs[s.id] = s.doc;
    }
    return view;
  }
}
