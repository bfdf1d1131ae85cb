import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TidelineError } from '../../shared/errors';
import { openSqliteStore, SQLITE_SCHEMA_VERSION } from './sqlite-store';
import type { SqliteStore } from './sqlite-store';
import { REJECTION_WINDOW } from './store';
import { runStoreTests } from './store-acceptance';

/** SQLite reports `synchronous` as a number: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. */
const SQLITE_SYNCHRONOUS_FULL = 2;

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'tideline-store-'));

runStoreTests('SqliteStore', () => {
  const dir = tempDir();
  // A missing parent directory checks that the store creates it.
  const path = join(dir, 'data', 'tideline.db');
  const opened = [openSqliteStore(path)];
  return {
    store: opened[0] as SqliteStore,
    reopen: () => {
      const store = openSqliteStore(path);
      opened.push(store);
      return store;
    },
    cleanup: () => {
      for (const store of opened) store.close();
      rmSync(dir, { recursive: true, force: true });
    },
    index: (collections) => opened[opened.length - 1]!.ensureIndexes(collections),
  };
});

describe('SqliteStore', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = tempDir();
    path = join(dir, 'tideline.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const openError = (): TidelineError => {
    try {
      openSqliteStore(path).close();
    } catch (err) {
      if (err instanceof TidelineError) return err;
      throw err;
    }
    throw new Error('the store opened');
  };

  it('a snapshot cursor holds its read transaction (pinning the WAL) until it is closed, and no longer', () => {
    const store = openSqliteStore(path);
    const other = new Database(path, { timeout: 10 });
    try {
      const put = (id: string) => ({ collection: 'notes', id, doc: { id }, owner: null });
      store.transact((tx) => [tx.append(put('a'), null, 1), tx.append(put('b'), null, 1)]);
      const cursor = store.openSnapshot({ userId: 'u1' }, 'k1');
      expect(cursor.next(1, Infinity).docs.map((d) => d.doc.id)).toEqual(['a']);
      store.transact((tx) => tx.append(put('a0'), null, 1));
      // A checkpoint cannot pass the reader's point: the WAL stays.
      expect(other.pragma('wal_checkpoint(TRUNCATE)')).toEqual([expect.objectContaining({ busy: 1 })]);
      expect(cursor.next(5, Infinity).docs.map((d) => d.doc.id)).toEqual(['b']);
      cursor.close();
      expect(other.pragma('wal_checkpoint(TRUNCATE)')).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
    } finally {
      other.close();
      store.close();
    }
  });

  it('a store in :memory: (no second connection) still opens snapshot cursors, copied out at open', () => {
    const store = openSqliteStore(':memory:');
    try {
      store.transact((tx) => tx.append({ collection: 'notes', id: 'a', doc: { id: 'a' }, owner: null }, null, 1));
      const cursor = store.openSnapshot({ userId: 'u1' }, 'k1');
      store.transact((tx) => tx.append({ collection: 'notes', id: 'a', doc: null, owner: null }, null, 1));
      expect(cursor.next(10, Infinity)).toEqual({ docs: [{ collection: 'notes', doc: { id: 'a' } }], done: true });
      expect(cursor.asOf).toBe(1);
      cursor.close();
    } finally {
      store.close();
    }
  });

  it('runs in WAL mode', () => {
    openSqliteStore(path).close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it("syncs every commit to disk (synchronous FULL) on the store's own connection, in WAL mode", () => {
    // `synchronous` is per connection: a second connection would report its own default, not the store's.
    const store = openSqliteStore(path);
    expect(store.durability()).toEqual({ journalMode: 'wal', synchronous: SQLITE_SYNCHRONOUS_FULL });
    store.close();
    // And again on reopening an existing file, where nothing is created.
    const again = openSqliteStore(path);
    expect(again.durability()).toEqual({ journalMode: 'wal', synchronous: SQLITE_SYNCHRONOUS_FULL });
    again.close();
  });

  it('answers id lookups, id ranges and id paging through the primary key, never a scan', () => {
    const store = openSqliteStore(path);
    try {
      store.transact((tx) => {
        for (let i = 0; i < 50; i++)
          tx.append({ collection: 'products', id: `p${i}`, doc: { id: `p${i}` }, owner: null }, null, 1);
      });
      const plans = [
        store.queryPlan({ collection: 'products', filters: [{ field: 'id', op: 'eq', value: 'p7' }], limit: 10 }),
        store.queryPlan({ collection: 'products', filters: [{ field: 'id', op: 'prefix', value: 'p1' }], limit: 10 }),
        store.queryPlan({ collection: 'products', filters: [], limit: 10, after: { value: null, id: 'p20' } }),
      ];
      const [eq, prefix, page] = plans.map((p) => p.join(' | '));
      expect(eq).toMatch(/SEARCH docs USING INDEX sqlite_autoindex_docs_1 \(collection=\? AND id=\?\)/);
      expect(prefix).toMatch(/SEARCH docs USING INDEX sqlite_autoindex_docs_1 \(collection=\? AND id>\? AND id<\?\)/);
      expect(page).toMatch(/SEARCH docs USING INDEX sqlite_autoindex_docs_1 \(collection=\? AND id>\?\)/);
      for (const plan of plans) expect(plan.join(' | ')).not.toMatch(/SCAN/);
      expect(
        store.query({ collection: 'products', filters: [{ field: 'id', op: 'eq', value: 'p7' }], limit: 10 }),
      ).toEqual([{ id: 'p7' }]);
    } finally {
      store.close();
    }
  });

  it('seeks to a page position on the order field index instead of scanning up to it (no statistics needed)', () => {
    const store = openSqliteStore(path);
    try {
      store.ensureIndexes({ products: ['price'] });
      store.transact((tx) => {
        for (let i = 0; i < 3000; i++) {
          const collection = i % 3 === 0 ? 'notes' : 'products';
          tx.append({ collection, id: `p${i}`, doc: { id: `p${i}`, price: i % 100 }, owner: null }, null, 1);
        }
      });
      const page = (direction: 'asc' | 'desc'): string[] =>
        store.queryPlan({
          collection: 'products',
          filters: [],
          orderBy: { field: 'price', direction },
          limit: 100,
          after: { value: 50, id: 'p77' },
        });
      // The rest of the position's group of equal prices, then the prices past it; each a seek.
      expect(page('asc')).toEqual([
        'SEARCH docs USING INDEX ix_products_price (<expr>=? AND id>?)',
        'SEARCH docs USING INDEX ix_products_price (<expr>>?)',
      ]);
      expect(page('desc')).toEqual([
        'SEARCH docs USING INDEX ix_products_price (<expr>=? AND id>?)',
        'SEARCH docs USING INDEX ix_products_price (<expr><?)',
        'SEARCH docs USING INDEX ix_products_price (<expr>=?)',
        'SEARCH docs USING INDEX ix_products_price (<expr>=?)',
      ]);
    } finally {
      store.close();
    }
  });

  it('gives every new store its own server id', () => {
    const a = openSqliteStore(join(dir, 'a.db'));
    const b = openSqliteStore(join(dir, 'b.db'));
    expect(a.meta().serverId).not.toBe(b.meta().serverId);
    a.close();
    b.close();
  });

  it('refuses a store written by a newer schema version, and leaves it as it was', () => {
    openSqliteStore(path).close();
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(SQLITE_SCHEMA_VERSION + 1);
    db.close();

    const err = openError();
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toContain(`schema version ${SQLITE_SCHEMA_VERSION + 1}`);
    expect(err.message).toContain(path);
    expect(err.hint).toMatch(/newer/);

    const check = new Database(path, { readonly: true });
    expect(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get()).toBe(
      SQLITE_SCHEMA_VERSION + 1,
    );
    check.close();
  });

  it('migrates a version 3 store: its clients keep their last seq and are unbound until their next hello', () => {
    openSqliteStore(path).close();
    const db = new Database(path);
    db.exec(`DROP TABLE clients; CREATE TABLE clients (client_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO clients VALUES ('old-client', 7); UPDATE meta SET value = 3 WHERE key = 'schema_version';`);
    db.close();

    const store = openSqliteStore(path);
    store.transact((tx) => {
      expect(tx.lastSeq('old-client')).toBe(7);
      expect(tx.clientUser('old-client')).toBeNull();
      tx.bindClient('old-client', 'alice');
    });
    expect(store.transact((tx) => [tx.clientUser('old-client'), tx.lastSeq('old-client')])).toEqual(['alice', 7]);
    store.close();
    const check = new Database(path, { readonly: true });
    expect(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get()).toBe(
      SQLITE_SCHEMA_VERSION,
    );
    check.close();
  });

  it('migrates a version 4 store: owner-only documents count against their owners, others against nobody', () => {
    const first = openSqliteStore(path);
    first.transact((tx) => {
      tx.bindClient('k1', 'alice');
      tx.append({ collection: 'carts', id: 'alice/cart', doc: { id: 'alice/cart', n: 1 }, owner: 'alice' }, null, 1);
      tx.append(
        { collection: 'notes', id: 'n1', doc: { id: 'n1', text: 'hi' }, owner: null },
        { clientId: 'k1', seq: 1 },
        1,
      );
    });
    first.close();
    const db = new Database(path);
    db.exec(
      `DROP TABLE usage; ALTER TABLE docs DROP COLUMN author; UPDATE meta SET value = 4 WHERE key = 'schema_version';`,
    );
    db.close();

    const store = openSqliteStore(path);
    const cartBytes = Buffer.byteLength(JSON.stringify({ id: 'alice/cart', n: 1 }));
    expect(
      store.transact((tx) => [tx.usage('carts', 'alice'), tx.usage('notes', 'alice'), tx.docAuthor('notes', 'n1')]),
    ).toEqual([{ docs: 1, bytes: cartBytes }, { docs: 0, bytes: 0 }, null]);
    // Counting goes on from there: an edit of the old note still counts against nobody; a new one counts.
    store.transact((tx) => {
      tx.append(
        { collection: 'notes', id: 'n1', doc: { id: 'n1', text: 'edited' }, owner: null },
        { clientId: 'k1', seq: 2 },
        2,
      );
      tx.append({ collection: 'notes', id: 'n2', doc: { id: 'n2' }, owner: null }, { clientId: 'k1', seq: 3 }, 2);
    });
    expect(store.transact((tx) => tx.usage('notes', 'alice'))).toEqual({
      docs: 1,
      bytes: Buffer.byteLength('{"id":"n2"}'),
    });
    store.close();
    const check = new Database(path, { readonly: true });
    expect(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get()).toBe(
      SQLITE_SCHEMA_VERSION,
    );
    check.close();
  });

  it('migrates a version 4 store without making a cluster id: it adopts one when it follows, or makes one to lead', () => {
    openSqliteStore(path).close();
    const db = new Database(path);
    db.exec("DELETE FROM meta WHERE key = 'cluster_id'; UPDATE meta SET value = 4 WHERE key = 'schema_version';");
    db.close();

    const store = openSqliteStore(path);
    expect(store.clusterId()).toBeNull();
    store.setClusterId('cluster-a');
    store.close();
    const reopened = openSqliteStore(path);
    expect(reopened.clusterId()).toBe('cluster-a');
    reopened.close();
  });

  it('refuses an SQLite database of another program without touching it', () => {
    const db = new Database(path);
    db.exec('CREATE TABLE notes (body TEXT)');
    db.close();
    expect(openError().message).toContain('not a Tideline store');
    const check = new Database(path, { readonly: true });
    expect(check.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get()).toBe(1);
    check.close();
  });

  it('refuses a file that is not a database, naming the path', () => {
    writeFileSync(path, 'not a database, just some text that is long enough to have a header'.repeat(10));
    const err = openError();
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toContain(path);
    expect(err.hint).toBe(
      'check that the path is a Tideline SQLite store and that this process may read and write it and its directory',
    );
  });

  it('fails clearly when used after close', () => {
    const store = openSqliteStore(path);
    store.close();
    expect(() => store.meta()).toThrow(/closed/);
    store.close();
  });

  it('backs up a consistent copy while open', async () => {
    const store = openSqliteStore(path);
    store.transact((tx) => tx.append({ collection: 'products', id: 'p1', doc: { id: 'p1' }, owner: null }, null, 1));
    const backupPath = join(dir, 'backups', 'one.db');
    await store.backupTo(backupPath);
    store.transact((tx) => tx.append({ collection: 'products', id: 'p2', doc: { id: 'p2' }, owner: null }, null, 2));

    const copy = openSqliteStore(backupPath);
    expect(copy.meta()).toEqual({ ...store.meta(), headLsn: 1 });
    expect(copy.getDoc('products', 'p1')?.doc).toEqual({ id: 'p1' });
    expect(copy.getDoc('products', 'p2')).toBeUndefined();
    copy.close();
    store.close();
  });

  it('keeps a committed transaction when the process is killed right after', () => {
    // The child commits, then SIGKILLs itself: nothing after `transact` returns may be needed for durability.
    const storeModule = new URL('./sqlite-store.ts', import.meta.url).href;
    const script = `
      import { openSqliteStore } from ${JSON.stringify(storeModule)};
      const store = openSqliteStore(${JSON.stringify(path)});
      store.transact((tx) => {
        tx.append({ collection: 'orders', id: 'o1', doc: { id: 'o1', total: 12 }, owner: 'u1' }, { clientId: 'k1', seq: 1 }, 1);
        tx.recordOutcome('k1', 1, null);
      });
      process.kill(process.pid, 'SIGKILL');
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    expect(child.stderr).toBe('');
    expect(child.signal).toBe('SIGKILL');

    const store = openSqliteStore(path);
    expect(store.meta().headLsn).toBe(1);
    expect(store.getDoc('orders', 'o1')?.doc).toEqual({ id: 'o1', total: 12 });
    expect(store.transact((tx) => tx.lastSeq('k1'))).toBe(1);
    store.close();
  });

  describe("a client's last seq, kept in memory between its reads and its one write per transaction", () => {
    const rowOf = (clientId: string): number | undefined => {
      const db = new Database(path, { readonly: true });
      try {
        const row = db.prepare('SELECT last_seq FROM clients WHERE client_id = ?').get(clientId) as
          { last_seq: number } | undefined;
        return row?.last_seq;
      } finally {
        db.close();
      }
    };
    const rejectionRows = (clientId: string): number[] => {
      const db = new Database(path, { readonly: true });
      try {
        const rows = db.prepare('SELECT seq FROM rejections WHERE client_id = ? ORDER BY seq').all(clientId) as Array<{
          seq: number;
        }>;
        return rows.map((r) => r.seq);
      } finally {
        db.close();
      }
    };
    const error = { code: 'REJECTED' as const, message: 'no', retryable: false };

    it('is written to its row by the commit, and a rolled-back transaction gives it back', () => {
      const store = openSqliteStore(path);
      store.transact((tx) => {
        for (let seq = 1; seq <= 3; seq++) tx.recordOutcome('k', seq, null);
        expect(tx.lastSeq('k')).toBe(3);
      });
      expect(rowOf('k')).toBe(3);
      expect(() =>
        store.transact((tx) => {
          tx.recordOutcome('k', 4, null);
          expect(tx.lastSeq('k')).toBe(4);
          throw new Error('abort');
        }),
      ).toThrow('abort');
      expect(store.transact((tx) => tx.lastSeq('k'))).toBe(3);
      expect(rowOf('k')).toBe(3);
      store.close();
      const reopened = openSqliteStore(path);
      expect(reopened.transact((tx) => tx.lastSeq('k'))).toBe(3);
      reopened.close();
    });

    it('a savepoint that rolls back takes back only its own seqs', () => {
      const store = openSqliteStore(path);
      store.transact((tx) => {
        tx.recordOutcome('outer', 1, null);
        expect(() =>
          store.transact((inner) => {
            inner.recordOutcome('inner', 1, null);
            throw new Error('abort inner');
          }),
        ).toThrow('abort inner');
        expect(tx.lastSeq('outer')).toBe(1);
        expect(tx.lastSeq('inner')).toBe(0);
      });
      expect(rowOf('outer')).toBe(1);
      expect(rowOf('inner')).toBeUndefined();
      store.close();
    });

    it('keeps rejections for the newest REJECTION_WINDOW seqs only, in the transaction and after it', () => {
      const store = openSqliteStore(path);
      store.transact((tx) => tx.recordOutcome('k', 1, error));
      expect(store.transact((tx) => tx.rejection('k', 1))).toEqual(error);
      store.transact((tx) => {
        for (let seq = 2; seq <= REJECTION_WINDOW; seq++) tx.recordOutcome('k', seq, null);
        expect(tx.rejection('k', 1)).toEqual(error);
        tx.recordOutcome('k', REJECTION_WINDOW + 1, error);
        // Seq 1 is out of the window now.
        expect(tx.rejection('k', 1)).toBeUndefined();
      });
      expect(rejectionRows('k')).toEqual([REJECTION_WINDOW + 1]);
      expect(store.transact((tx) => tx.rejection('k', REJECTION_WINDOW + 1))).toEqual(error);
      store.close();
    });

    it('a retried seq settled again drops the rejection it had, as before', () => {
      const store = openSqliteStore(path);
      store.transact((tx) => tx.recordOutcome('k', 1, error));
      store.transact((tx) => tx.recordOutcome('k', 1, null));
      expect(rejectionRows('k')).toEqual([]);
      store.close();
    });
  });
});
