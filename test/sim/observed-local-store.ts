import { MemoryLocalStore, scopedTx } from '../../client/store/memory-local-store';
import type {
  LocalMeta,
  LocalStore,
  LocalTx,
  OutboxEntry,
  RejectionRecord,
  ShadowEntry,
  TxScope,
} from '../../client/sync/local-store';
import type { AppSchema } from '../../shared/schema/define-schema';
import type { Rng } from './random';
import type { DocsView } from './server-history';
import { cloneView } from './server-history';

/** Faults of the local store, as probabilities per write inside a transaction. */
export interface LocalFaults {
  /** A write lands, then the transaction throws (IndexedDB aborts it): nothing of it is kept. */
  failWrite: number;
  /** As `failWrite`, and the client process dies with it (the tab crashes mid-transaction). */
  crashInside: number;
}

export const NO_LOCAL_FAULTS: LocalFaults = { failWrite: 0, crashInside: 0 };

/** Thrown by an injected fault; the engine must roll back and carry on (or, on a crash, be replaced). */
export class LocalStoreFault extends Error {}

/** Which of the client's integration paths one committed transaction took. */
export interface TxPaths {
  /** A snapshot was swapped in (all documents replaced). */
  snapshot: boolean;
  /** Confirmed changes were integrated by restoring every shadowed document and re-running what is pending. */
  rebase: boolean;
  /** Settled mutations' documents were restored from the shadow with no re-run. */
  fastPath: boolean;
}

/** The persisted state right after a transaction that wrote something committed. */
export interface Committed {
  visible: DocsView;
  shadow: ShadowEntry[];
  outbox: OutboxEntry[];
  meta: LocalMeta;
  paths: TxPaths;
}

const WRITES = new Set<keyof LocalTx>([
  'putDoc',
  'deleteDoc',
  'clearDocs',
  'applyDocs',
  'deleteShadow',
  'putShadow',
  'bulkPutShadow',
  'addShadows',
  'clearShadow',
  'putOutbox',
  'bulkPutOutbox',
  'deleteOutbox',
  'setMeta',
  'addRejection',
  'stage',
  'clearStaging',
]);

/**
 * The persisted replica of one simulated browser (a `MemoryLocalStore`,
 * which outlives engines) and what the checks need to watch it: after every
 * committed transaction that wrote, `onCommitted` gets the committed state,
 * synchronously, before the engine sees the transaction's result.
 *
 * Each engine (one process of the tab) opens its own handle. Faults: a
 * transaction may throw after some of its writes (and is rolled back), and
 * the process may crash inside a transaction or between two: the handle
 * dies, its transaction in flight rolls back, and nothing it asks for later
 * ever returns, as nothing runs in a dead process.
 */
export class ObservedLocalStore {
  readonly inner: MemoryLocalStore;
  transactions = 0;
  injectedFailures = 0;
  private shadowNow: ShadowEntry[] = [];
  private current: StoreHandle | null = null;

  constructor(
    schema: AppSchema,
    newClientId: () => string,
    private readonly rng: Rng,
    public faults: LocalFaults,
    private readonly onCommitted: (state: Committed) => void,
    /** The process crashed inside a transaction: the owner replaces the engine. */
    private readonly onCrashInside: () => void,
  ) {
    this.inner = new MemoryLocalStore(schema, newClientId);
  }

  /** A new process opens the replica; the previous handle, if any, must be dead or unused. */
  open(): LocalStore {
    const handle = new StoreHandle(this);
    this.current = handle;
    return handle;
  }

  /** The process dies: its transaction in flight rolls back, and it never gets another answer. */
  crash(): void {
    if (this.current) this.current.dead = true;
  }

  /** Every visible document. */
  dump(): DocsView {
    return this.inner.dump();
  }

  /** The confirmed data as of the last committed transaction: visible documents with the shadow put back. */
  confirmed(): DocsView {
    return confirmedOf(this.inner.dump(), this.shadowNow);
  }

  /** @internal One transaction of `handle`, with faults and observation. */
  run<T>(handle: StoreHandle, fn: (tx: LocalTx) => Promise<T>, scope?: TxScope): Promise<T> {
    this.transactions++;
    let wrote = false;
    const paths: TxPaths = { snapshot: false, rebase: false, fastPath: false };
    let after: Omit<Committed, 'visible' | 'paths'> | null = null;
    const committed = this.inner.transaction(async (inner) => {
      const tx = this.faulty(handle, scope ? scopedTx(inner, scope) : inner, (method) => {
        if (WRITES.has(method)) wrote = true;
        if (method === 'clearDocs') paths.snapshot = true;
        if (method === 'clearShadow') paths.rebase = true;
        // The fast path alone deletes shadow entries (it reads them first, as a local write batch does too).
        if (method === 'deleteShadow') paths.fastPath = true;
      });
      const result = await fn(tx);
      if (handle.dead) throw new LocalStoreFault('the process died before the transaction committed');
      // Nothing can fail from here on: this is the state the transaction commits.
      after = { shadow: await inner.shadow(), outbox: await inner.outbox(), meta: await inner.meta() };
      return result;
    });
    // Attached before any later transaction can start, so the hook sees exactly this transaction's result.
    const observed = committed.then((result) => {
      if (after !== null) {
        this.shadowNow = after.shadow;
        if (wrote) {
          if (paths.snapshot) paths.rebase = false;
          this.onCommitted({ ...after, visible: cloneView(this.inner.dump()), paths });
        }
      }
      return result;
    });
    // A dead process never hears back.
    return new Promise<T>((resolve, reject) => {
      observed.then(
        (r) => !handle.dead && resolve(r),
        (e: unknown) => !handle.dead && reject(e instanceof Error ? e : new Error(String(e))),
      );
    });
  }

  private faulty(handle: StoreHandle, inner: LocalTx, seen: (method: keyof LocalTx) => void): LocalTx {
    const wrap = <K extends keyof LocalTx>(method: K): LocalTx[K] => {
      const original = inner[method] as (...args: unknown[]) => Promise<unknown>;
      const wrapped = async (...args: unknown[]): Promise<unknown> => {
        if (handle.dead) throw new LocalStoreFault('the process died');
        seen(method);
        const result = await original(...args);
        if (WRITES.has(method)) {
          if (this.rng.chance(this.faults.crashInside)) {
            handle.dead = true;
            this.injectedFailures++;
            this.onCrashInside();
            throw new LocalStoreFault(`the process crashed inside a transaction, after ${method}`);
          }
          if (this.rng.chance(this.faults.failWrite)) {
            this.injectedFailures++;
            throw new LocalStoreFault(`injected failure after ${method}`);
          }
        }
        return result;
      };
      return wrapped as unknown as LocalTx[K];
    };
    const tx = {} as Record<keyof LocalTx, unknown>;
    for (const method of Object.keys(inner) as Array<keyof LocalTx>) tx[method] = wrap(method);
    return tx as unknown as LocalTx;
  }
}

/** What one engine (one process) holds: a `LocalStore` that goes silent when the process dies. */
class StoreHandle implements LocalStore {
  dead = false;

  constructor(private readonly owner: ObservedLocalStore) {}

  transaction<T>(fn: (tx: LocalTx) => Promise<T>, scope?: TxScope): Promise<T> {
    if (this.dead) return new Promise<T>(() => undefined);
    return this.owner.run(this, fn, scope);
  }

  rejections(): Promise<RejectionRecord[]> {
    return this.owner.inner.rejections();
  }

  close(): void {}
}

export function confirmedOf(visible: DocsView, shadow: readonly ShadowEntry[]): DocsView {
  const view = cloneView(visible);
  for (const s of shadow) {
    const docs = (view[s.collection] ??= {});
    if (s.doc === null) delete docs[s.id];
    else docs[s.id] = s.doc;
  }
  return view;
}
