import Dexie from 'dexie';
import type { DBCore, DBCoreMutateRequest, DBCoreTransaction } from 'dexie';

/** One value of a counter as the user could see it: right after a local transaction committed. */
export interface VisibleValue {
  counter: string;
  /** null: the counter document was absent after the transaction. */
  value: number | null;
  at: number;
}

type Listener = (values: readonly VisibleValue[]) => void;

const listeners = new Map<string, Listener>();
let installed = false;

/**
 * Watches every committed local transaction of the named IndexedDB databases
 * and reports the counters it wrote, with their values after the commit.
 *
 * Why a DBCore middleware and not `liveQuery`: a live query re-runs some time
 * after a commit and can skip a state that the next transaction replaced,
 * which is exactly the transient double count (5 → 10 → 5) we must see. The
 * middleware sees every write of every transaction, and reports the last value
 * of each key once the transaction has committed (what any reader could see).
 * It is installed as a Dexie addon, so it wraps the database `open()` creates
 * inside the client library without touching the library.
 */
export function watchCounters(
  dbName: string,
  collection: string,
  isCounter: (id: string) => boolean,
  field: string,
  listener: Listener,
): () => void {
  install(collection, isCounter, field);
  listeners.set(dbName, listener);
  return () => listeners.delete(dbName);
}

function install(collection: string, isCounter: (id: string) => boolean, field: string): void {
  if (installed) return;
  installed = true;
  Dexie.addons.push((db: Dexie) => {
    db.use({
      stack: 'dbcore',
      name: 'chaos-visible-counters',
      create(down: DBCore): DBCore {
        const pending = new WeakMap<DBCoreTransaction, Map<string, number | null>>();
        const known = new Set<string>();
        return {
          ...down,
          transaction(stores, mode, options) {
            const trans = down.transaction(stores, mode, options);
            if (mode === 'readwrite' && stores.includes(collection) && hasEvents(trans)) {
              const writes = new Map<string, number | null>();
              pending.set(trans, writes);
              trans.addEventListener('complete', () => {
                if (writes.size === 0) return;
                const at = Date.now();
                const values = [...writes].map(([counter, value]) => ({ counter, value, at }));
                listeners.get(db.name)?.(values);
              });
            }
            return trans;
          },
          table(name) {
            const table = down.table(name);
            if (name !== collection) return table;
            return {
              ...table,
              mutate(req: DBCoreMutateRequest) {
                const writes = pending.get(req.trans);
                if (writes) record(writes, req);
                return table.mutate(req);
              },
            };
          },
        };

        function record(writes: Map<string, number | null>, req: DBCoreMutateRequest): void {
          if (req.type === 'put' || req.type === 'add') {
            for (const v of req.values as ReadonlyArray<{ id?: unknown; [k: string]: unknown }>) {
              if (typeof v.id !== 'string' || !isCounter(v.id)) continue;
              known.add(v.id);
              const n = v[field];
              writes.set(v.id, typeof n === 'number' ? n : null);
            }
          } else if (req.type === 'delete') {
            for (const k of req.keys) if (typeof k === 'string' && isCounter(k)) writes.set(k, null);
          } else {
            // deleteRange: a snapshot clears the table before it lays the new state down.
            for (const k of known) writes.set(k, null);
          }
        }
      },
    });
  });
}

function hasEvents(trans: unknown): trans is { addEventListener(type: 'complete', cb: () => void): void } {
  return (
    typeof trans === 'object' &&
    trans !== null &&
    typeof (trans as { addEventListener?: unknown }).addEventListener === 'function'
  );
}
