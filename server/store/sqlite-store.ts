import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { linkSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { TidelineError } from '../../shared/errors';
import type { ErrorCode, WireErrorShape } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import type { Write } from '../../shared/mutators/types';
import type { Change } from '../../shared/protocol/change';
import { sealBackup } from './backup';
import { mergeByLsn } from './log';
import { changeOf, changeRowBytes, continuing, cutPage, finishMutation, openMutation, parseDoc } from './log-page';
import type { ChangeRow } from './log-page';
import { createPrivateFile, makePrivate, PRIVATE_DIR_MODE } from './private-files';
import {
  appIndexName,
  appIndexSql,
  countStatement,
  parseAppIndexSql,
  queryParts,
  runQuery,
  StatementCache,
} from './sqlite-query';
import type { SqlParam, SqlStatement } from './sqlite-query';
import { heldSnapshotCursor } from './snapshot-cursor';
import { openSqliteSnapshot } from './sqlite-snapshot';
import { authorOf, isServerOrigin, REJECTION_WINDOW, storedRejection } from './store';
import type {
  DocQuery,
  LogPage,
  OutcomeEntry,
  ReplicaSnapshot,
  Scope,
  ServerOriginRecord,
  SnapshotDoc,
  SnapshotCursor,
  Store,
  StoreMeta,
  StoredDoc,
  StoreTx,
  TermStart,
  Usage,
} from './store';

/**
 * Version of the tables below, kept in `meta`. Bump it with every change to
 * them and teach `openSqliteStore` to migrate the older files; a file from a
 * newer version is refused, because this code would misread it.
 */
export const SQLITE_SCHEMA_VERSION = 6;

/*
 * History:
 * 1 — meta, docs, changes, clients, rejections.
 * 2 — outcomes: log entries for mutations that wrote nothing (created on open; a version 1 file has none).
 * 3 — idempotency: keyed server writes (origin → LSN, ts), for duplicate answers and retention (created on open).
 * 4 — clients.user_id: the user a client id is bound to (added on open; NULL for older rows: bound at the next hello).
 * 5 — quotas: docs.author (who a document counts against) and usage (per collection and author: documents and
 *     bytes). Added on open; an older file's owner-only documents count against their owners, others against nobody.
 * 6 — meta.cluster_id: the cluster whose history the store holds (made with a new store; an older store has none
 *     until it leads, which makes one, or follows a primary, which it adopts).
 */

export interface SqliteStoreOptions {
  /** How long a write waits for another connection's lock (the CLI, a backup reader) before failing; default 5000 ms. */
  busyTimeoutMs?: number;
}

/*
 * `docs` keeps a rowid because bodies run up to 64 KiB, and WITHOUT ROWID
 * tables store whole rows in the primary key's b-tree, which suits small rows
 * only. The partial index lets compaction find old tombstones without a scan.
 * `meta.value` has no declared type so ids stay text and counters integers.
 */
const SCHEMA_SQL = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT,
    lsn INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    body TEXT,
    author TEXT,
    PRIMARY KEY (collection, id)
  );
  CREATE INDEX IF NOT EXISTS docs_tombstones ON docs (lsn) WHERE deleted = 1;
  CREATE TABLE IF NOT EXISTS changes (
    lsn INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT,
    deleted INTEGER NOT NULL,
    body TEXT,
    client_id TEXT,
    seq INTEGER,
    ts INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, user_id TEXT) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS rejections (
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    retryable INTEGER NOT NULL,
    PRIMARY KEY (client_id, seq)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS outcomes (
    lsn INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    code TEXT,
    message TEXT,
    retryable INTEGER,
    ts INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS idempotency (origin TEXT PRIMARY KEY, lsn INTEGER NOT NULL, ts INTEGER NOT NULL) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS idempotency_ts ON idempotency (ts);
  CREATE TABLE IF NOT EXISTS usage (
    collection TEXT NOT NULL,
    user_id TEXT NOT NULL,
    docs INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (collection, user_id)
  ) WITHOUT ROWID;
`;

/** Every author's documents and bytes, counted again from the live documents (a migration, a snapshot import). */
const REBUILD_USAGE_SQL = `
  DELETE FROM usage;
  INSERT INTO usage (collection, user_id, docs, bytes)
    SELECT collection, author, COUNT(*), SUM(length(CAST(body AS BLOB))) FROM docs
    WHERE deleted = 0 AND author IS NOT NULL GROUP BY collection, author;
`;

interface DocRow {
  owner: string | null;
  lsn: number;
  body: string | null;
}

/** What a write needs of the version it replaces: who it counts against, and its size. */
interface PrevRow {
  author: string | null;
  body: string | null;
}

interface OutcomeRow {
  lsn: number;
  term: number;
  client_id: string;
  seq: number;
  code: string | null;
  message: string | null;
  retryable: number | null;
  ts: number;
}

/** Origins read at a time past a page's end to find where its last mutation ends. */
const BOUNDARY_STEP = 64;

type MetaKey = 'schema_version' | 'server_id' | 'term' | 'head_lsn' | 'horizon' | 'terms' | 'cluster_id';

/** Opens (creating it and its directory if needed) the SQLite store at `path`. */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): SqliteStore {
  return new SqliteStore(path, options);
}

/**
 * The embedded `Store`. One process owns a file: the head, term and horizon
 * are cached in memory, so another writer on the same file would go unseen.
 *
 * Rejections are kept for good, also past compaction: a client may retry a
 * rejected seq after any delay and must get the same answer, and there is one
 * small row per rejected mutation.
 */
export class SqliteStore implements Store {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly serverId: string;
  private head: number;
  private term: number;
  private horizon: number;
  private closed = false;
  private readonly runImmediate: (fn: () => unknown) => unknown;

  private readonly selectDoc;
  private readonly upsertDoc;
  private readonly insertChange;
  private readonly selectChanges;
  private readonly selectOutcomes;
  private readonly selectOrigins;
  private readonly insertOutcome;
  private readonly deleteOutcomes;
  private readonly selectOldestTs;
  private readonly selectScope;
  private readonly selectLastSeq;
  private readonly upsertClient;
  private readonly selectRejection;
  private readonly upsertRejection;
  private readonly deleteRejection;
  private readonly deleteRejectionsBelow;
  private readonly deleteChanges;
  private readonly deleteTombstones;
  private readonly updateMeta;
  private readonly updateMetaText;
  private readonly selectMetaText;
  private readonly upsertServerOrigin;
  private readonly selectServerOrigin;
  private readonly selectOldServerOrigins;
  private readonly deleteServerOrigin;
  private readonly deleteClient;
  private readonly deleteRejections;
  private readonly selectClientUser;
  private readonly bindClientStmt;
  private readonly selectPrev;
  private readonly selectUsage;
  private readonly addUsage;
  private readonly dropEmptyUsage;
  /**
   * Each client's last seq as this process knows it: committed, or raised by
   * the open transaction. The group commit reads a client's last seq for
   * every mutation; this node is the only writer of its file, so after the
   * first read the row need not be read again. Bounded (oldest dropped
   * first); cleared when a transaction rolls back.
   */
  private readonly knownLastSeq = new Map<string, number>();
  /** The user each client id is bound to (null: not bound), as `knownLastSeq`: read once, kept current by this process's writes. */
  private readonly knownUser = new Map<string, string | null>();
  /**
   * Clients whose last seq the open transaction raised, and to what: their
   * `clients` row is written once per transaction, just before it commits,
   * not once per mutation.
   */
  private readonly raisedLastSeq = new Map<string, number>();
  /** Nesting of `atomically` (1 inside the outermost transaction). */
  private depth = 0;
  /** The query statements, prepared once per shape (see sqlite-query.ts). */
  private readonly statements: StatementCache;
  /** The fields of each collection's app indexes, read from sqlite_schema when first needed. */
  private indexFields: Map<string, string[][]> | null = null;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    let db: Database.Database | undefined;
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      db = new Database(path, { timeout: busyTimeoutMs });
      // 0600 before the WAL exists: SQLite gives its -wal and -shm the database file's mode.
      if (path !== ':memory:') makePrivate(path);
      db.pragma('journal_mode = WAL');
      // FULL makes every commit fsync the WAL, so an ack survives power loss, not just kill -9.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = OFF');
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
      db.transaction(() => initSchema(db as Database.Database, path)).immediate();
      // A -wal or -shm left by an older version or a crash keeps its mode when reused.
      if (path !== ':memory:') for (const suffix of ['-wal', '-shm']) makePrivate(path + suffix);
      const meta = loadMeta(db, path);
      this.db = db;
      this.serverId = meta.serverId;
      this.term = meta.term;
      this.head = meta.headLsn;
      this.horizon = meta.horizon;
    } catch (err) {
      db?.close();
      if (err instanceof TidelineError) throw err;
      throw new TidelineError('INTERNAL', `cannot open the store at ${path}: ${messageOf(err)}`, {
        cause: err,
        hint: 'check that the path is a Tideline SQLite store and that this process may read and write it and its directory',
      });
    }

    const transaction = db.transaction((fn: () => unknown): unknown => fn());
    this.runImmediate = (fn) => transaction.immediate(fn);
    this.statements = new StatementCache(db);

    this.selectDoc = db.prepare<[string, string], DocRow>(
      'SELECT owner, lsn, body FROM docs WHERE collection = ? AND id = ?',
    );
    this.upsertDoc = db.prepare<[string, string, string | null, number, number, string | null, string | null]>(
      `INSERT INTO docs (collection, id, owner, lsn, deleted, body, author) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (collection, id) DO UPDATE SET owner = excluded.owner, lsn = excluded.lsn,
         deleted = excluded.deleted, body = excluded.body, author = excluded.author`,
    );
    this.selectPrev = db.prepare<[string, string], PrevRow>(
      'SELECT author, body FROM docs WHERE collection = ? AND id = ? AND deleted = 0',
    );
    this.selectUsage = db.prepare<[string, string], Usage>(
      'SELECT docs, bytes FROM usage WHERE collection = ? AND user_id = ?',
    );
    this.addUsage = db.prepare<[string, string, number, number]>(
      `INSERT INTO usage (collection, user_id, docs, bytes) VALUES (?, ?, ?, ?)
       ON CONFLICT (collection, user_id) DO UPDATE SET docs = docs + excluded.docs, bytes = bytes + excluded.bytes`,
    );
    this.dropEmptyUsage = db.prepare<[string, string]>(
      'DELETE FROM usage WHERE collection = ? AND user_id = ? AND docs <= 0',
    );
    this.insertChange = db.prepare<
      [number, number, string, string, string | null, number, string | null, string | null, number | null, number]
    >(
      `INSERT INTO changes (lsn, term, collection, id, owner, deleted, body, client_id, seq, ts)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.selectChanges = db.prepare<[number, number], ChangeRow>(
      `SELECT lsn, term, collection, id, owner, body, client_id, seq, ts FROM changes
       WHERE lsn > ? ORDER BY lsn LIMIT ?`,
    );
    this.selectOrigins = db.prepare<[number, number], { lsn: number; client_id: string | null; seq: number | null }>(
      'SELECT lsn, client_id, seq FROM changes WHERE lsn > ? ORDER BY lsn LIMIT ?',
    );
    this.selectOutcomes = db.prepare<[number, number], OutcomeRow>(
      `SELECT lsn, term, client_id, seq, code, message, retryable, ts FROM outcomes
       WHERE lsn > ? ORDER BY lsn LIMIT ?`,
    );
    this.insertOutcome = db.prepare<
      [number, number, string, number, string | null, string | null, number | null, number]
    >(
      `INSERT INTO outcomes (lsn, term, client_id, seq, code, message, retryable, ts)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.deleteOutcomes = db.prepare<[number]>('DELETE FROM outcomes WHERE lsn <= ?');
    this.selectOldestTs = db.prepare<[number, number], { ts: number }>(
      'SELECT ts FROM changes WHERE lsn = ? UNION ALL SELECT ts FROM outcomes WHERE lsn = ?',
    );
    this.selectScope = db.prepare<[string], { collection: string; body: string }>(
      `SELECT collection, body FROM docs WHERE deleted = 0 AND (owner IS NULL OR owner = ?)
       ORDER BY collection, id`,
    );
    this.selectLastSeq = db.prepare<[string], { last_seq: number }>('SELECT last_seq FROM clients WHERE client_id = ?');
    this.upsertClient = db.prepare<[string, number]>(
      `INSERT INTO clients (client_id, last_seq) VALUES (?, ?)
       ON CONFLICT (client_id) DO UPDATE SET last_seq = excluded.last_seq`,
    );
    this.selectRejection = db.prepare<[string, number], { code: string; message: string; retryable: number }>(
      'SELECT code, message, retryable FROM rejections WHERE client_id = ? AND seq = ?',
    );
    this.upsertRejection = db.prepare<[string, number, string, string, number]>(
      'INSERT OR REPLACE INTO rejections (client_id, seq, code, message, retryable) VALUES (?, ?, ?, ?, ?)',
    );
    this.deleteRejection = db.prepare<[string, number]>('DELETE FROM rejections WHERE client_id = ? AND seq = ?');
    this.deleteRejectionsBelow = db.prepare<[string, number]>('DELETE FROM rejections WHERE client_id = ? AND seq < ?');
    this.deleteChanges = db.prepare<[number]>('DELETE FROM changes WHERE lsn <= ?');
    this.deleteTombstones = db.prepare<[number]>('DELETE FROM docs WHERE deleted = 1 AND lsn <= ?');
    this.updateMeta = db.prepare<[number, MetaKey]>('UPDATE meta SET value = ? WHERE key = ?');
    this.updateMetaText = db.prepare<[MetaKey, string]>('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    this.selectMetaText = db.prepare<[MetaKey], { value: string }>('SELECT value FROM meta WHERE key = ?');
    this.upsertServerOrigin = db.prepare<[string, number, number]>(
      `INSERT INTO idempotency (origin, lsn, ts) VALUES (?, ?, ?)
       ON CONFLICT (origin) DO UPDATE SET lsn = max(lsn, excluded.lsn)`,
    );
    this.selectServerOrigin = db.prepare<[string], ServerOriginRecord>(
      'SELECT lsn, ts FROM idempotency WHERE origin = ?',
    );
    this.selectOldServerOrigins = db.prepare<[number, number], { origin: string }>(
      'SELECT origin FROM idempotency WHERE ts < ? ORDER BY ts LIMIT ?',
    );
    this.deleteServerOrigin = db.prepare<[string]>('DELETE FROM idempotency WHERE origin = ?');
    this.deleteClient = db.prepare<[string]>('DELETE FROM clients WHERE client_id = ?');
    this.selectClientUser = db.prepare<[string], { user_id: string | null }>(
      'SELECT user_id FROM clients WHERE client_id = ?',
    );
    this.bindClientStmt = db.prepare<[string, string]>(
      `INSERT INTO clients (client_id, last_seq, user_id) VALUES (?, 0, ?)
       ON CONFLICT (client_id) DO UPDATE SET user_id = excluded.user_id`,
    );
    this.deleteRejections = db.prepare<[string]>('DELETE FROM rejections WHERE client_id = ?');
  }

  meta(): StoreMeta {
    this.assertOpen();
    return { serverId: this.serverId, term: this.term, headLsn: this.head, horizon: this.horizon };
  }

  getDoc(collection: string, id: string): StoredDoc | undefined {
    this.assertOpen();
    const row = this.selectDoc.get(collection, id);
    if (row === undefined) return undefined;
    return { collection, id, doc: row.body === null ? null : parseDoc(row.body), owner: row.owner, lsn: row.lsn };
  }

  transact<T>(fn: (tx: StoreTx) => T): T {
    this.assertOpen();
    let active = true;
    const tx = this.txOps(() => {
      if (!active) throw new TidelineError('INTERNAL', 'a store transaction was used after it ended');
    });
    try {
      return this.atomically(() => fn(tx));
    } finally {
      active = false;
    }
  }

  /**
   * The operations of the transaction `holdTransaction` opened, each run
   * straight on it, without a savepoint of its own: what the asynchronous
   * adapter calls per mutation (a savepoint per call cost the group commit
   * about half its throughput). A call that throws may leave part of its
   * writes, so the holder must roll the whole transaction back, which
   * `AsyncStore.transact` does when its function rejects.
   */
  heldTx(): StoreTx {
    return this.txOps(() => {
      if (!this.db.inTransaction) throw new TidelineError('INTERNAL', 'no held store transaction is open');
    });
  }

  /** One transaction's operations; `check` runs before each (the transaction is still open). */
  private txOps(check: () => void): StoreTx {
    return {
      getDoc: (collection, id) => {
        check();
        return this.getDoc(collection, id);
      },
      lastSeq: (clientId) => {
        check();
        return this.lastSeq(clientId);
      },
      rejection: (clientId, seq) => {
        check();
        return this.rejection(clientId, seq);
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
        const error = rejection === null ? null : storedRejection(rejection);
        const entry: OutcomeEntry = { lsn: this.head + 1, term: this.term, clientId, seq, error, ts };
        this.insertOutcomeEntry(entry);
        this.recordOutcome(clientId, seq, error);
        this.noteServerOrigin(clientId, entry.lsn, ts);
        this.head = entry.lsn;
        return entry;
      },
      forgetRejections: (clientId, below) => {
        check();
        this.deleteRejectionsBelow.run(clientId, below);
      },
      serverOrigin: (origin) => {
        check();
        return this.selectServerOrigin.get(origin);
      },
      clientUser: (clientId) => {
        check();
        return this.clientUser(clientId);
      },
      bindClient: (clientId, userId) => {
        check();
        this.bindClient(clientId, userId);
      },
      usage: (collection, userId) => {
        check();
        const row = this.selectUsage.get(collection, userId);
        return row ? { docs: row.docs, bytes: row.bytes } : { docs: 0, bytes: 0 };
      },
      docAuthor: (collection, id) => {
        check();
        return this.selectPrev.get(collection, id)?.author ?? null;
      },
    };
  }

  readChanges(after: number, limit: number): Change[] {
    this.assertOpen();
    if (!(limit >= 1)) return [];
    return this.selectChanges.all(after, Math.floor(Math.min(limit, Number.MAX_SAFE_INTEGER))).map(changeOf);
  }

  readLog(after: number, limit: number, maxBytes = Infinity): LogPage {
    this.assertOpen();
    const n = Math.floor(Math.min(Math.max(limit, 1), Number.MAX_SAFE_INTEGER));
    // Both kinds share one LSN sequence: read up to n of each, changes only while they fit the byte
    // budget (so a page of large documents is never read whole), then keep the n lowest LSNs in budget.
    const { rows: changeRows, cutAt } = this.changesWithin(after, n, maxBytes);
    const outcomes = this.selectOutcomes.all(after, n).map(outcomeOf);
    const { page, bytes } = cutPage(changeRows, outcomes, cutAt, after, n, maxBytes);
    // Finish the mutation the page ends in. Only the origins are read to find where it ends (usually
    // at once), then its rows.
    const last = openMutation(page);
    if (last !== undefined) {
      const to = page.to;
      let end = to;
      for (;;) {
        const next = this.selectOrigins.all(end, BOUNDARY_STEP);
        const i = continuing(next, end, last);
        end += i;
        if (i < BOUNDARY_STEP) break;
      }
      if (end > to) finishMutation(page, last, this.selectChanges.all(to, end - to), end, after, bytes, maxBytes);
    }
    return page;
  }

  /**
   * Up to `n` changes after `after`, stopping before the first that would pass `maxBytes` (the first
   * always comes); `cutAt` is the LSN of that first change left out, or Infinity.
   */
  private changesWithin(after: number, n: number, maxBytes: number): { rows: ChangeRow[]; cutAt: number } {
    if (maxBytes === Infinity) return { rows: this.selectChanges.all(after, n), cutAt: Infinity };
    const rows: ChangeRow[] = [];
    let bytes = 0;
    for (const r of this.selectChanges.iterate(after, n)) {
      const size = changeRowBytes(r);
      if (rows.length > 0 && bytes + size > maxBytes) return { rows, cutAt: r.lsn };
      rows.push(r);
      bytes += size;
    }
    return { rows, cutAt: Infinity };
  }

  scanScope(scope: Scope): Array<{ collection: string; doc: Doc }> {
    this.assertOpen();
    const allOf = scope.allOf ?? [];
    const rows =
      allOf.length === 0
        ? this.selectScope.all(scope.userId)
        : this.db
            .prepare<Array<string>, { collection: string; body: string }>(
              `SELECT collection, body FROM docs WHERE deleted = 0
               AND (owner IS NULL OR owner = ? OR collection IN (${allOf.map(() => '?').join(', ')}))
               ORDER BY collection, id`,
            )
            .all(scope.userId, ...allOf);
    return rows.map((r) => ({ collection: r.collection, doc: parseDoc(r.body) }));
  }

  openSnapshot(scope: Scope, clientId: string): SnapshotCursor {
    this.assertOpen();
    if (this.path !== ':memory:') return openSqliteSnapshot(this.path, scope, clientId);
    // A private in-memory database has no second connection to read from: copy the scope out now.
    const docs = this.scanScope(scope).map((d) => ({ collection: d.collection, body: JSON.stringify(d.doc) }));
    const lastSeq = this.lastSeq(clientId);
    const rejections = new Map<number, WireErrorShape>();
    for (let seq = Math.max(1, lastSeq - REJECTION_WINDOW + 1); seq <= lastSeq; seq++) {
      const error = this.rejection(clientId, seq);
      if (error !== undefined) rejections.set(seq, error);
    }
    return heldSnapshotCursor(this.head, docs, lastSeq, rejections);
  }

  query(q: DocQuery): Doc[] {
    this.assertOpen();
    const parts = queryParts(q, this.indexesOf(q.collection));
    return runQuery(parts, q.limit, (st, limit) => this.rowsOf(st, limit)).map(parseDoc);
  }

  count(q: Omit<DocQuery, 'limit' | 'orderBy' | 'after'>): number {
    this.assertOpen();
    const { sql, params } = countStatement(q, this.indexesOf(q.collection));
    return this.statements.get<{ n: number }>(sql).get(...params)?.n ?? 0;
  }

  getMany(collection: string, ids: readonly string[], owner?: string): Doc[] {
    this.assertOpen();
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const params: string[] = [collection, ...unique];
    let sql = `SELECT id, body FROM docs WHERE collection = ? AND id IN (${unique.map(() => '?').join(', ')}) AND deleted = 0`;
    if (owner !== undefined) {
      sql += ' AND owner = ?';
      params.push(owner);
    }
    // Not cached: one statement per number of ids would crowd the query shapes out of the cache.
    const byId = new Map(
      this.db
        .prepare<string[], { id: string; body: string }>(sql)
        .all(...params)
        .map((r) => [r.id, r.body]),
    );
    return unique.flatMap((id) => {
      const body = byId.get(id);
      return body === undefined ? [] : [parseDoc(body)];
    });
  }

  pruneServerOrigins(before: number, limit: number): number {
    this.assertOpen();
    return this.atomically(() => {
      const old = this.selectOldServerOrigins.all(before, Math.max(0, Math.floor(limit)));
      for (const { origin } of old) {
        this.deleteServerOrigin.run(origin);
        this.deleteClient.run(origin);
        this.deleteRejections.run(origin);
        this.forgetClient(origin);
      }
      return old.length;
    });
  }

  /**
   * SQLite's plan for `q` (`EXPLAIN QUERY PLAN` details) for every statement
   * it may run, the re-read of a descending page's last group included: for
   * diagnostics and for the tests that pin index use.
   */
  queryPlan(q: DocQuery, kind: 'query' | 'count' = 'query'): string[] {
    this.assertOpen();
    const indexes = this.indexesOf(q.collection);
    const statements =
      kind === 'count'
        ? [countStatement(q, indexes)]
        : queryParts(q, indexes).flatMap((part) =>
            part.kind === 'plain' ? [part.statement] : [part.statement, part.tie(0)],
          );
    return statements.flatMap(({ sql, params }) =>
      this.db
        .prepare<SqlParam[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...params)
        .map((r) => r.detail),
    );
  }

  private indexesOf(collection: string): string[][] {
    if (this.indexFields === null) {
      this.indexFields = new Map();
      for (const ix of this.appIndexes()) {
        const list = this.indexFields.get(ix.collection) ?? [];
        list.push(ix.field.split('+'));
        this.indexFields.set(ix.collection, list);
      }
    }
    return this.indexFields.get(collection) ?? [];
  }

  private rowsOf(statement: SqlStatement, limit: number): Array<{ body: string; v?: unknown }> {
    const params = [...statement.params];
    params[params.length - 1] = limit;
    return this.statements.get<{ body: string; v?: unknown }>(statement.sql).all(...params);
  }

  /**
   * The app's indexes (one per indexed field, and per compound 'a+b'), in
   * the shape `appIndexSql` describes, so that replicas and the primary
   * answer `query` through them. An index of an older shape under the same
   * name is rebuilt. Idempotent.
   */
  ensureIndexes(collections: Readonly<Record<string, readonly string[]>>): void {
    this.assertOpen();
    const existing = this.db.prepare<[string], { sql: string | null }>(
      "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?",
    );
    for (const [collection, keys] of Object.entries(collections)) {
      for (const key of keys) {
        const fields = key.split('+');
        const name = appIndexName(collection, fields);
        const sql = appIndexSql(collection, fields);
        const had = existing.get(name);
        if (had?.sql === sql) continue;
        this.indexFields = null;
        this.atomically(() => {
          if (had !== undefined) this.db.exec(`DROP INDEX "${name}"`);
          this.db.exec(sql);
        });
      }
    }
  }

  logStats(): { count: number; oldestTs: number | null } {
    this.assertOpen();
    // LSNs are consecutive and compaction drops a prefix, so the log holds exactly (horizon, head].
    const oldest = this.horizon + 1;
    return { count: this.head - this.horizon, oldestTs: this.selectOldestTs.get(oldest, oldest)?.ts ?? null };
  }

  compact(upTo: number): { removedChanges: number; removedTombstones: number; horizon: number } {
    this.assertOpen();
    if (!Number.isSafeInteger(upTo))
      throw new TidelineError('BAD_REQUEST', `compact needs an integer LSN, got ${upTo}`);
    const target = Math.min(upTo, this.head);
    if (target <= this.horizon) return { removedChanges: 0, removedTombstones: 0, horizon: this.horizon };
    return this.atomically(() => {
      const removedChanges = this.deleteChanges.run(target).changes + this.deleteOutcomes.run(target).changes;
      const removedTombstones = this.deleteTombstones.run(target).changes;
      this.updateMeta.run(target, 'horizon');
      this.horizon = target;
      return { removedChanges, removedTombstones, horizon: target };
    });
  }

  setTerm(term: number): void {
    this.assertOpen();
    if (!Number.isSafeInteger(term) || term < this.term) {
      throw new TidelineError('INTERNAL', `cannot set the term to ${term}: the store is at term ${this.term}`, {
        hint: 'terms only rise; a node that meets a higher term steps down rather than lowering its own',
      });
    }
    if (term === this.term) return;
    this.atomically(() => {
      this.updateMeta.run(term, 'term');
      this.updateMetaText.run('terms', JSON.stringify([...this.terms(), { term, startLsn: this.head }]));
      this.term = term;
    });
  }

  terms(): TermStart[] {
    this.assertOpen();
    const row = this.selectMetaText.get('terms');
    // Stores made before term history was kept have had one term from the start.
    return row ? (JSON.parse(row.value) as TermStart[]) : [{ term: this.term, startLsn: 0 }];
  }

  adoptTerms(terms: readonly TermStart[]): void {
    this.assertOpen();
    const last = terms[terms.length - 1];
    if (!last) throw new TidelineError('INTERNAL', 'cannot adopt an empty term history');
    this.atomically(() => {
      this.updateMetaText.run('terms', JSON.stringify(terms));
      this.updateMeta.run(last.term, 'term');
      this.term = last.term;
    });
  }

  applyReplicated(
    changes: readonly Change[],
    outcomes: readonly OutcomeEntry[] = [],
    bindings: Readonly<Record<string, string>> = {},
  ): void {
    this.assertOpen();
    if (changes.length === 0 && outcomes.length === 0 && Object.keys(bindings).length === 0) return;
    this.atomically(() => {
      for (const [clientId, userId] of Object.entries(bindings)) this.bindClient(clientId, userId);
      for (const entry of mergeByLsn(changes, outcomes)) {
        if (entry.lsn !== this.head + 1) {
          throw new TidelineError('INTERNAL', `replicated entry ${entry.lsn} does not follow head ${this.head}`, {
            hint: 'the replica must catch up from its checkpoint, or through a snapshot',
          });
        }
        if ('collection' in entry) {
          const c = entry;
          const body = c.doc === null ? null : JSON.stringify(c.doc);
          const deleted = c.doc === null ? 1 : 0;
          this.insertChange.run(c.lsn, c.term, c.collection, c.id, c.owner, deleted, body, c.clientId, c.seq, c.ts);
          this.putDoc(c.collection, c.id, c.owner, c.lsn, body, c.clientId);
          if (c.clientId !== null && c.seq !== null && c.seq > this.lastSeq(c.clientId)) {
            this.raiseLastSeq(c.clientId, c.seq);
          }
          if (c.clientId !== null) this.noteServerOrigin(c.clientId, c.lsn, c.ts);
        } else {
          this.insertOutcomeEntry(entry);
          if (entry.seq > this.lastSeq(entry.clientId)) this.recordOutcome(entry.clientId, entry.seq, entry.error);
          else this.settleReplicatedBelow(entry);
          this.noteServerOrigin(entry.clientId, entry.lsn, entry.ts);
        }
        this.head = entry.lsn;
      }
    });
  }

  bindingsOf(clientIds: Iterable<string>): Record<string, string> {
    this.assertOpen();
    const out: Record<string, string> = {};
    for (const clientId of new Set(clientIds)) {
      const userId = this.selectClientUser.get(clientId)?.user_id;
      if (userId !== undefined && userId !== null) out[clientId] = userId;
    }
    return out;
  }

  clusterId(): string | null {
    this.assertOpen();
    const value = this.selectMetaText.get('cluster_id')?.value;
    return typeof value === 'string' ? value : null;
  }

  setClusterId(clusterId: string): void {
    this.assertOpen();
    this.atomically(() => this.updateMetaText.run('cluster_id', clusterId));
  }

  exportSnapshot(): ReplicaSnapshot {
    this.assertOpen();
    return this.atomically(() => {
      const docs = this.db
        .prepare<
          [],
          { collection: string; id: string; owner: string | null; lsn: number; body: string; author: string | null }
        >('SELECT collection, id, owner, lsn, body, author FROM docs WHERE deleted = 0 ORDER BY collection, id')
        .all()
        .map((r): SnapshotDoc => ({
          collection: r.collection,
          id: r.id,
          owner: r.owner,
          lsn: r.lsn,
          doc: parseDoc(r.body),
          author: r.author,
        }));
      const clients = this.db
        // An unbound client with nothing settled is a row of last seq 0, the same as no row.
        .prepare<[], { client_id: string; last_seq: number; user_id: string | null }>(
          'SELECT client_id, last_seq, user_id FROM clients WHERE last_seq > 0 OR user_id IS NOT NULL',
        )
        .all()
        .map((r) => ({
          clientId: r.client_id,
          lastSeq: r.last_seq,
          ...(r.user_id === null ? {} : { userId: r.user_id }),
        }));
      const rejections = this.db
        .prepare<[number], { client_id: string; seq: number; code: string; message: string; retryable: number }>(
          `SELECT r.client_id, r.seq, r.code, r.message, r.retryable FROM rejections r
           JOIN clients c ON c.client_id = r.client_id WHERE r.seq > c.last_seq - ? ORDER BY r.client_id, r.seq`,
        )
        .all(REJECTION_WINDOW)
        .map((r) => ({
          clientId: r.client_id,
          seq: r.seq,
          error: { code: r.code as ErrorCode, message: r.message, retryable: r.retryable === 1 },
        }));
      return { asOf: this.head, terms: this.terms(), docs, clients, rejections };
    });
  }

  importSnapshot(snapshot: ReplicaSnapshot): void {
    this.assertOpen();
    const last = snapshot.terms[snapshot.terms.length - 1];
    if (!last) throw new TidelineError('INTERNAL', 'a snapshot needs a term history');
    this.atomically(() => {
      this.db.exec(
        // A snapshot carries the clients rows of keyed server writes but not their records: those
        // keys keep answering duplicate here, and are never pruned on this node (safe, if not small).
        'DELETE FROM docs; DELETE FROM changes; DELETE FROM outcomes; DELETE FROM clients; DELETE FROM rejections; DELETE FROM idempotency; DELETE FROM usage;',
      );
      this.forgetClients();
      for (const d of snapshot.docs) {
        this.upsertDoc.run(d.collection, d.id, d.owner, d.lsn, 0, JSON.stringify(d.doc), d.author ?? d.owner);
      }
      this.db.exec(REBUILD_USAGE_SQL);
      for (const c of snapshot.clients) {
        this.upsertClient.run(c.clientId, c.lastSeq);
        if (c.userId !== undefined) this.bindClientStmt.run(c.clientId, c.userId);
      }
      for (const r of snapshot.rejections) this.keepRejection(r.clientId, r.seq, r.error);
      this.head = snapshot.asOf;
      this.horizon = snapshot.asOf;
      this.term = last.term;
      this.updateMeta.run(snapshot.asOf, 'horizon');
      this.updateMeta.run(last.term, 'term');
      this.updateMetaText.run('terms', JSON.stringify(snapshot.terms));
      // head_lsn is written by atomically() when it changed; write it anyway for an equal head.
      this.updateMeta.run(snapshot.asOf, 'head_lsn');
    });
  }

  /**
   * The durability settings of this store's own connection, as SQLite reports
   * them: for diagnostics and tests only. Pragmas such as `synchronous` are per
   * connection, so a second connection to the file cannot tell what this one uses.
   */
  durability(): { journalMode: string; synchronous: number } {
    this.assertOpen();
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /**
   * Opens a transaction that stays open until the returned `end` is called,
   * for the `AsyncStore` adapter (sync-store-adapter.ts): every call until
   * then runs inside it (`transact` nests as a savepoint); `end(true)`
   * commits, `end(false)` rolls back and restores the cached meta (and must
   * reset every other cache of what the transaction wrote, as `atomically`
   * does). The caller keeps every other user off the store meanwhile.
   */
  holdTransaction(): (commit: boolean) => void {
    this.assertOpen();
    const { head, term, horizon } = this;
    this.db.exec('BEGIN IMMEDIATE');
    // Held, it is the outermost transaction: calls through `transact` nest as savepoints, and the work
    // `atomically` does once per transaction (clients rows, the head in meta) is done here, at commit.
    this.depth++;
    let open = true;
    return (commit) => {
      if (!open) return;
      open = false;
      try {
        if (!this.db.inTransaction) return;
        try {
          if (commit) {
            this.writeRaisedLastSeqs();
            if (this.head !== head) this.updateMeta.run(this.head, 'head_lsn');
          }
          this.db.exec(commit ? 'COMMIT' : 'ROLLBACK');
        } catch (err) {
          if (this.db.inTransaction) this.db.exec('ROLLBACK');
          this.forgetRolledBack(head, term, horizon);
          throw err;
        }
        if (!commit) this.forgetRolledBack(head, term, horizon);
      } finally {
        this.depth--;
        this.raisedLastSeq.clear();
      }
    };
  }

  /** After a held transaction rolled back: the cached meta goes back, and what its writes taught the caches is void. */
  private forgetRolledBack(head: number, term: number, horizon: number): void {
    this.head = head;
    this.term = term;
    this.horizon = horizon;
    this.raisedLastSeq.clear();
    this.knownLastSeq.clear();
    this.knownUser.clear();
  }

  /**
   * Writes a consistent copy of the store to `path` while it stays online.
   * The copy goes to a temporary file first, so `path` never holds half a
   * backup, and is then linked (not renamed) into place: an existing file at
   * `path` (the live store, an older backup) is never replaced. SQLite copies
   * page by page between turns of the event loop.
   */
  async backupTo(path: string): Promise<void> {
    this.assertOpen();
    const tmp = `${path}.${randomUUID()}.tmp`;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
      // Made 0600 before SQLite writes a page into it.
      createPrivateFile(tmp);
      await this.db.backup(tmp);
      sealBackup(tmp);
      linkSync(tmp, path);
      rmSync(tmp, { force: true });
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new TidelineError('INTERNAL', `backup of the store at ${this.path} to ${path} failed: ${messageOf(err)}`, {
        cause: err,
        hint: 'check the free space and permissions of the backup directory',
      });
    }
  }

  /**
   * Runs `fn` in one immediate transaction (a savepoint when nested) and puts
   * the cached meta back when it throws, so a rolled-back transaction gives
   * its LSNs back.
   */
  private atomically<T>(fn: () => T): T {
    const { head, term, horizon } = this;
    const outer = this.depth === 0;
    // A savepoint that rolls back must take back only its own raises.
    const raisedBefore = outer ? null : new Map(this.raisedLastSeq);
    this.depth++;
    try {
      return this.runImmediate(() => {
        const result = fn();
        if (outer) this.writeRaisedLastSeqs();
        // Once per transaction rather than per append keeps group commits cheap.
        if (this.head !== head) this.updateMeta.run(this.head, 'head_lsn');
        return result;
      }) as T;
    } catch (err) {
      this.head = head;
      this.term = term;
      this.horizon = horizon;
      this.raisedLastSeq.clear();
      if (raisedBefore) for (const [c, seq] of raisedBefore) this.raisedLastSeq.set(c, seq);
      // What the rolled-back writes taught the caches is void: they are read again.
      this.knownLastSeq.clear();
      this.knownUser.clear();
      throw err;
    } finally {
      this.depth--;
      if (outer) this.raisedLastSeq.clear();
    }
  }

  /**
   * The `clients` rows of the clients this transaction settled seqs for, one
   * write each, and the rejections that fell out of their window.
   */
  private writeRaisedLastSeqs(): void {
    for (const [clientId, seq] of this.raisedLastSeq) {
      this.upsertClient.run(clientId, seq);
      // Only the newest REJECTION_WINDOW seqs keep theirs: a flood of rejected writes holds a bounded number of rows.
      if (seq > REJECTION_WINDOW) this.deleteRejectionsBelow.run(clientId, seq - REJECTION_WINDOW + 1);
    }
  }

  private lastSeq(clientId: string): number {
    const known = this.raisedLastSeq.get(clientId) ?? this.knownLastSeq.get(clientId);
    if (known !== undefined) return known;
    const stored = this.selectLastSeq.get(clientId)?.last_seq ?? 0;
    remember(this.knownLastSeq, clientId, stored);
    return stored;
  }

  /** Sets a client's last seq; its row is written when the transaction commits (`writeRaisedLastSeqs`). */
  private raiseLastSeq(clientId: string, seq: number): void {
    this.raisedLastSeq.set(clientId, seq);
    remember(this.knownLastSeq, clientId, seq);
  }

  private clientUser(clientId: string): string | null {
    const known = this.knownUser.get(clientId);
    if (known !== undefined) return known;
    const user = this.selectClientUser.get(clientId)?.user_id ?? null;
    remember(this.knownUser, clientId, user);
    return user;
  }

  private bindClient(clientId: string, userId: string): void {
    this.bindClientStmt.run(clientId, userId);
    remember(this.knownUser, clientId, userId);
  }

  /** A client's row went (a pruned server origin). */
  private forgetClient(clientId: string): void {
    this.knownLastSeq.delete(clientId);
    this.knownUser.delete(clientId);
    this.raisedLastSeq.delete(clientId);
  }

  /** Every client row went (a snapshot replaces them). */
  private forgetClients(): void {
    this.knownLastSeq.clear();
    this.knownUser.clear();
    this.raisedLastSeq.clear();
  }

  private rejection(clientId: string, seq: number): WireErrorShape | undefined {
    // Out of the window: its row goes when the transaction commits (writeRaisedLastSeqs), and is gone already for this one.
    if (seq <= this.lastSeq(clientId) - REJECTION_WINDOW) return undefined;
    const row = this.selectRejection.get(clientId, seq);
    if (row === undefined) return undefined;
    return { code: row.code as ErrorCode, message: row.message, retryable: row.retryable === 1 };
  }

  private append(write: Write, origin: { clientId: string; seq: number } | null, ts: number): Change {
    checkWrite(write);
    const lsn = this.head + 1;
    const body = write.doc === null ? null : JSON.stringify(write.doc);
    const deleted = write.doc === null ? 1 : 0;
    const clientId = origin?.clientId ?? null;
    const seq = origin?.seq ?? null;
    this.insertChange.run(lsn, this.term, write.collection, write.id, write.owner, deleted, body, clientId, seq, ts);
    this.putDoc(write.collection, write.id, write.owner, lsn, body, clientId);
    if (clientId !== null) this.noteServerOrigin(clientId, lsn, ts);
    this.head = lsn;
    return {
      lsn,
      term: this.term,
      collection: write.collection,
      id: write.id,
      doc: write.doc,
      owner: write.owner,
      clientId,
      seq,
      ts,
    };
  }

  /**
   * Makes a change the document's current version (`body` null: a tombstone)
   * and moves its bytes between authors' usage: a new document counts against
   * `authorOf` its owner and origin, a new version against the author it had.
   */
  private putDoc(
    collection: string,
    id: string,
    owner: string | null,
    lsn: number,
    body: string | null,
    clientId: string | null,
  ): void {
    const prev = this.selectPrev.get(collection, id);
    let author: string | null = null;
    if (body !== null) {
      const originUser = clientId === null ? null : this.clientUser(clientId);
      author = prev !== undefined ? prev.author : authorOf(owner, originUser);
    }
    if (prev?.author != null && prev.body !== null) {
      this.addUsage.run(collection, prev.author, -1, -byteLength(prev.body));
      if (author !== prev.author) this.dropEmptyUsage.run(collection, prev.author);
    }
    if (author !== null && body !== null) this.addUsage.run(collection, author, 1, byteLength(body));
    this.upsertDoc.run(collection, id, owner, lsn, body === null ? 1 : 0, body, author);
  }

  private recordOutcome(clientId: string, seq: number, rejection: WireErrorShape | null): void {
    const previous = this.lastSeq(clientId);
    this.raiseLastSeq(clientId, seq);
    if (rejection !== null) this.keepRejection(clientId, seq, rejection);
    // A rejection row is only ever written for a seq at or below its client's last seq (with the seq's
    // outcome, or a replicated one below it), so a seq past the last one has no row to drop.
    else if (seq <= previous) this.deleteRejection.run(clientId, seq);
  }

  /** A keyed server write's record: the LSN its outcome ends at, and its commit time. */
  private noteServerOrigin(clientId: string, lsn: number, ts: number): void {
    if (isServerOrigin(clientId)) this.upsertServerOrigin.run(clientId, lsn, ts);
  }

  private keepRejection(clientId: string, seq: number, rejection: WireErrorShape): void {
    const { code, message, retryable } = storedRejection(rejection);
    this.upsertRejection.run(clientId, seq, code, message, retryable ? 1 : 0);
  }

  /**
   * A replicated outcome of a seq this node already counts as settled (its
   * last seq is higher, say from a hello that settled a gap here while it led):
   * the primary stored this outcome's rejection row (or dropped it, for a
   * no-op), so this node does too, while the seq is in its rejection window.
   * Its last seq stays: it never goes down.
   */
  private settleReplicatedBelow(o: OutcomeEntry): void {
    if (o.seq <= this.lastSeq(o.clientId) - REJECTION_WINDOW) return;
    if (o.error === null) this.deleteRejection.run(o.clientId, o.seq);
    else this.keepRejection(o.clientId, o.seq, o.error);
  }

  private insertOutcomeEntry(o: OutcomeEntry): void {
    const e = o.error === null ? null : storedRejection(o.error);
    this.insertOutcome.run(
      o.lsn,
      o.term,
      o.clientId,
      o.seq,
      e?.code ?? null,
      e?.message ?? null,
      e === null ? null : e.retryable ? 1 : 0,
      o.ts,
    );
  }

  private assertOpen(): void {
    if (this.closed) throw new TidelineError('INTERNAL', `the store at ${this.path} is closed`);
  }

  /*
   * What the start-up schema check reads and changes (server/schema-check.ts):
   * documents per collection, the expression indexes `ensureIndexes` made,
   * and the app schema this data directory was last served with.
   */

  /** Documents per collection, live and tombstones (a tombstone's change is still in the log). */
  countByCollection(): Array<{ collection: string; live: number; deleted: number }> {
    this.assertOpen();
    return this.db
      .prepare<[], { collection: string; live: number; deleted: number }>(
        `SELECT collection, SUM(deleted = 0) AS live, SUM(deleted = 1) AS deleted FROM docs
         GROUP BY collection ORDER BY collection`,
      )
      .all();
  }

  /**
   * The indexes made by `ensureIndexes` (and by older versions), read back
   * from their SQL; `field` is a compound's 'a+b'.
   */
  appIndexes(): Array<{ name: string; collection: string; field: string }> {
    this.assertOpen();
    const rows = this.db
      .prepare<[], { name: string; sql: string | null }>(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'docs' AND name LIKE 'ix\\_%' ESCAPE '\\'",
      )
      .all();
    const out: Array<{ name: string; collection: string; field: string }> = [];
    for (const r of rows) {
      const ix = parseAppIndexSql(r.sql ?? '');
      if (ix) out.push({ name: r.name, collection: ix.collection, field: ix.fields.join('+') });
    }
    return out;
  }

  /** Drops one index that `appIndexes` lists; other indexes are the store's own and stay. */
  dropAppIndex(name: string): void {
    this.assertOpen();
    if (!this.appIndexes().some((ix) => ix.name === name)) {
      throw new TidelineError('INTERNAL', `${name} is not an app index of the store at ${this.path}`);
    }
    this.indexFields = null;
    this.db.exec(`DROP INDEX "${name}"`);
  }

  /** The app schema (name and version) this store was last served with; null before the first. */
  appSchema(): { name: string; version: number } | null {
    this.assertOpen();
    const row = this.db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'app_schema'").get();
    if (!row) return null;
    const parsed = JSON.parse(row.value) as { name?: unknown; version?: unknown };
    return typeof parsed.name === 'string' && typeof parsed.version === 'number'
      ? { name: parsed.name, version: parsed.version }
      : null;
  }

  recordAppSchema(schema: { name: string; version: number }): void {
    this.assertOpen();
    this.db
      .prepare<[string]>("INSERT OR REPLACE INTO meta (key, value) VALUES ('app_schema', ?)")
      .run(JSON.stringify({ name: schema.name, version: schema.version }));
  }
}

/** Refuses a document stored under another id: it would be served under a key it does not carry. */
function checkWrite(write: Write): void {
  if (write.doc !== null && write.doc.id !== write.id) {
    throw new TidelineError(
      'INTERNAL',
      `cannot store ${write.collection}/${write.id}: the document's id is '${write.doc.id}'`,
    );
  }
}

function initSchema(db: Database.Database, path: string): void {
  const tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table'").all();
  if (tables.length > 0) {
    if (!tables.some((t) => t.name === 'meta')) {
      throw new TidelineError('INTERNAL', `${path} is an SQLite database but not a Tideline store`, {
        hint: 'point the server at a new path or at a Tideline store file',
      });
    }
    const row = db.prepare<[], { value: unknown }>("SELECT value FROM meta WHERE key = 'schema_version'").get();
    const version = row?.value;
    if (typeof version !== 'number' || !Number.isInteger(version)) {
      throw new TidelineError(
        'INTERNAL',
        `${path} has no valid schema version; it is damaged or not a Tideline store`,
        {
          hint: 'restore the store from a backup',
        },
      );
    }
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new TidelineError(
        'INTERNAL',
        `${path} has store schema version ${version}, newer than this build's ${SQLITE_SCHEMA_VERSION}`,
        { hint: 'run the Tideline version that wrote this store, or a newer one' },
      );
    }
  }
  const created = tables.length === 0;
  db.exec(SCHEMA_SQL);
  // Version 6: a new store starts a cluster of its own; a replica adopts its primary's at its first sync.
  if (created) db.prepare<[string]>("INSERT INTO meta (key, value) VALUES ('cluster_id', ?)").run(randomUUID());
  // Version 4: a version 3 (or older) `clients` table lacks the binding column; its rows stay unbound (NULL).
  const clientColumns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('clients')").all();
  if (!clientColumns.some((c) => c.name === 'user_id')) db.exec('ALTER TABLE clients ADD COLUMN user_id TEXT');
  // Version 5: authors. What wrote an older document is not known but for an owner-only one (its owner);
  // other documents count against nobody until deleted.
  const docColumns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('docs')").all();
  if (!docColumns.some((c) => c.name === 'author')) {
    db.exec('ALTER TABLE docs ADD COLUMN author TEXT');
    db.exec('UPDATE docs SET author = owner WHERE deleted = 0 AND owner IS NOT NULL');
    db.exec(REBUILD_USAGE_SQL);
  }
  const insert = db.prepare<[MetaKey, string | number]>('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)');
  insert.run('schema_version', SQLITE_SCHEMA_VERSION);
  insert.run('server_id', randomUUID());
  insert.run('term', 1);
  insert.run('head_lsn', 0);
  insert.run('horizon', 0);
  insert.run('terms', JSON.stringify([{ term: 1, startLsn: 0 }]));
  // The tables of older versions are all kept; SCHEMA_SQL above added what they lacked.
  db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(SQLITE_SCHEMA_VERSION);
}

function loadMeta(db: Database.Database, path: string): StoreMeta {
  const rows = db.prepare<[], { key: string; value: unknown }>('SELECT key, value FROM meta').all();
  const values = new Map(rows.map((r) => [r.key, r.value]));
  const serverId = values.get('server_id');
  const numbers = (['term', 'head_lsn', 'horizon'] as const).map((key) => values.get(key));
  const [term, headLsn, horizon] = numbers;
  if (
    typeof serverId !== 'string' ||
    typeof term !== 'number' ||
    typeof headLsn !== 'number' ||
    typeof horizon !== 'number' ||
    !numbers.every(Number.isSafeInteger) ||
    horizon > headLsn
  ) {
    throw new TidelineError('INTERNAL', `the meta table of ${path} is damaged`, {
      hint: 'restore the store from a backup',
    });
  }
  return { serverId, term, headLsn, horizon };
}

function outcomeOf(r: OutcomeRow): OutcomeEntry {
  const error: WireErrorShape | null =
    r.code === null ? null : { code: r.code as ErrorCode, message: r.message ?? '', retryable: r.retryable === 1 };
  return { lsn: r.lsn, term: r.term, clientId: r.client_id, seq: r.seq, error, ts: r.ts };
}

/** A body's size as UTF-8, as `jsonByteLength` counts the document (its body is `JSON.stringify` of it). */
function byteLength(body: string): number {
  return Buffer.byteLength(body, 'utf8');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Most client ids `knownLastSeq` and `knownUser` keep each (a few MB); the oldest entry goes first. */
const KNOWN_CLIENTS = 100_000;

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > KNOWN_CLIENTS) map.delete(map.keys().next().value!);
}
