import { Dexie } from 'dexie';
import { open } from 'tideline/client';
import type { EngineEvent, Tideline } from 'tideline/client';
import type { BatchRun, BenchApi, OpenArgs } from '../api';
import { benchDoc, benchSchema } from '../schema';
import type { BenchSchema } from '../schema';

/**
 * The bench page: Tideline imported through its public entries only, as an
 * app would, and a few functions on `window.bench` for the runner. "Persisted"
 * is the end of the IndexedDB transaction that stored a document: the client
 * emits `applied` right after the transaction applying a server message has
 * committed, so the time taken in that listener is the commit time.
 */

const now = (): number => performance.timeOrigin + performance.now();

let db: Tideline<BenchSchema> | null = null;
/** Document id → when the transaction that stored it (first) completed. */
const persistedAt = new Map<string, number>();
/** Called after each `applied` event; each returns true once it is done. */
const watchers = new Set<() => boolean>();

function onEvent(e: EngineEvent): void {
  if (e.type !== 'applied') return;
  const at = now();
  for (const id of e.changed['docs'] ?? []) if (!persistedAt.has(id)) persistedAt.set(id, at);
  for (const w of [...watchers]) if (w()) watchers.delete(w);
}

function replica(): Tideline<BenchSchema> {
  if (db === null) throw new Error('bench: open() first');
  return db;
}

async function openReplica(args: OpenArgs): Promise<Tideline<BenchSchema>> {
  db?.close();
  db = await open(benchSchema, { servers: [args.server], token: args.token, dbName: args.dbName });
  db.on(onEvent);
  return db;
}

/** Resolves with `done()`'s value once it is not undefined, re-checked after each applied message. */
function watch<T>(label: string, timeoutMs: number, done: () => T | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const first = done();
    if (first !== undefined) {
      resolve(first);
      return;
    }
    const timer = setTimeout(() => {
      watchers.delete(check);
      reject(new Error(`bench: ${label} not done after ${timeoutMs} ms`));
    }, timeoutMs);
    const check = (): boolean => {
      const value = done();
      if (value === undefined) return false;
      clearTimeout(timer);
      resolve(value);
      return true;
    };
    watchers.add(check);
  });
}

const put = (prefix: string, i: number): Promise<unknown> =>
  replica().mutate.put({ collection: 'docs', doc: benchDoc(prefix, i) });

const bench: BenchApi = {
  async open(args) {
    const started = now();
    const opened = await openReplica(args);
    if (args.waitSynced) await opened.whenSynced({ timeoutMs: 60_000 });
    return now() - started;
  },

  async initialSync(args) {
    const started = now();
    const opened = await openReplica(args);
    const docs = opened.collection('docs').table;
    // A count is a read of its own after the commits, so the time is that of the last applied message
    // seen when it answers; messages that arrive during a count ask for another one.
    let counting = false;
    let again = false;
    let last = started;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`bench: ${args.count} docs not synced after ${args.timeoutMs} ms`));
      }, args.timeoutMs);
      const check = (): void => {
        if (counting) {
          again = true;
          return;
        }
        counting = true;
        void docs.count().then((n) => {
          counting = false;
          if (n >= args.count) {
            clearTimeout(timer);
            stop();
            resolve(last - started);
          } else if (again) {
            again = false;
            check();
          }
        }, reject);
      };
      const stop = opened.on((e) => {
        if (e.type !== 'applied') return;
        last = now();
        check();
      });
      check();
    });
  },

  async singlePuts(prefix, count) {
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const t = now();
      await put(prefix, i);
      times.push(now() - t);
    }
    return times;
  },

  async putBatches(prefix, from, batches, size): Promise<BatchRun> {
    const batchMs: number[] = [];
    const startedAt = now();
    for (let b = 0; b < batches; b++) {
      const t = now();
      const first = from + b * size;
      await Promise.all(Array.from({ length: size }, (_, k) => put(prefix, first + k)));
      batchMs.push(now() - t);
    }
    return { startedAt, endedAt: now(), batchMs };
  },

  async putOne(prefix, i) {
    const t = now();
    await put(prefix, i);
    return t;
  },

  persisted(prefix, from, count, timeoutMs) {
    let next = from;
    let latest = 0;
    return watch(`${count} docs ${prefix}-${from}.. persisted`, timeoutMs, () => {
      for (; next < from + count; next++) {
        const at = persistedAt.get(`${prefix}-${next}`);
        if (at === undefined) return undefined;
        latest = Math.max(latest, at);
      }
      return latest;
    });
  },

  async floor(batches, size) {
    const name = `bench-floor-${crypto.randomUUID()}`;
    const raw = new Dexie(name);
    raw.version(1).stores({ docs: ['id', ...benchSchema.collections.docs.indexes].join(', ') });
    await raw.open();
    const table = raw.table('docs');
    const started = now();
    for (let b = 0; b < batches; b++) {
      await table.bulkPut(Array.from({ length: size }, (_, k) => benchDoc('floor', b * size + k)));
    }
    const ms = now() - started;
    raw.close();
    await Dexie.delete(name);
    return (batches * size * 1000) / ms;
  },

  goOffline() {
    replica().goOffline();
  },

  goOnline() {
    const t = now();
    replica().goOnline();
    return t;
  },

  status() {
    const s = replica().status();
    return { state: s.state, pending: s.pending };
  },

  close() {
    db?.close();
    db = null;
  },
};

window.bench = bench;
