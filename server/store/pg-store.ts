import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { TidelineError } from '../../shared/errors';
import type { ErrorCode, WireErrorShape } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import type { Change } from '../../shared/protocol/change';
import type { AsyncSnapshotCursor, AsyncStore, AsyncStoreTx } from './async-store';
import { mergeByLsn } from './log';
import { changeOf, changeRowBytes, continuing, cutPage, finishMutation, openMutation, parseDoc } from './log-page';
import type { ChangeRow } from './log-page';
import { heartbeatNode, listNodes, removeNode } from './pg-nodes';
import type { ClusterNodeRow, HeartbeatResult, NodeHeartbeat } from './pg-nodes';
import { openPgSnapshot } from './pg-snapshot';
import { checkSchemaName, initPgSchema, rebuildUsageSql } from './pg-schema';
import { pgCountStatement, pgIndexSql, pgQueryStatement } from './pg-query';
import { PgTxOps } from './pg-tx-ops';
import type { HeadState } from './pg-tx-ops';
import { REJECTION_WINDOW } from './store';
import type {
  DocQuery,
  LogPage,
  OutcomeEntry,
  ReplicaSnapshot,
  Scope,
  SnapshotDoc,
  StoreMeta,
  StoredDoc,
  TermStart,
} from './store';

export interface PgStoreOptions {
  /** A PostgreSQL connection string (postgres://user@host:port/database). */
  url: string;
  /** The PostgreSQL schema that holds this store's tables; default `tideline`. Nodes of one cluster share it. */
  schema?: string;
  /** Connections for commits and reads; default 8. */
  poolSize?: number;
  /** Connections for open snapshot cursors, apart so that slow snapshot readers never hold up commits; default 4. */
  snapshotPoolSize?: number;
  /**
   * How long PostgreSQL lets a connection sit idle inside a transaction before
   * it ends the session (`idle_in_transaction_session_timeout`); default
   * 30000 ms. A write transaction holds the `head` lock that every node's
   * commits wait for: a node that stalls holding it (a blocked event loop, a
   * half-open connection) holds up the cluster for at most this long, then
   * its transaction is rolled back.
   */
  idleInTransactionTimeoutMs?: number;
}

/** bigint (int8) columns as JS numbers: LSNs, seqs, ts and counts stay far below 2^53. */
const parseInt8 = (v: string): number => Number(v);
const types: pg.CustomTypesConfig = {
  getTypeParser: (oid, format) =>
    oid === pg.types.builtins.INT8 ? parseInt8 : (pg.types.getTypeParser(oid, format) as unknown),
};

/** Opens (creating its tables when missing) the PostgreSQL store of `options.schema`. */
export async function openPgStore(options: PgStoreOptions): Promise<PgStore> {
  const schema = checkSchemaName(options.schema ?? 'tideline');
  const idle_in_transaction_session_timeout = options.idleInTransactionTimeoutMs ?? 30_000;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 8,
    types,
    idle_in_transaction_session_timeout,
    // The commit's statements are named (pg-tx-ops.ts): parsed once per connection, but planned on every
    // run. A generic plan, which PostgreSQL would cache after five runs, is made for the table as it was
    // (a new store is empty, so a scan looks cheapest) and then kept while the table grows.
    options: '-c plan_cache_mode=force_custom_plan',
  });
  // Snapshot cursors sit idle between pages for as long as their session reads: they are bounded by their callers.
  const snapshotPool = new pg.Pool({ connectionString: options.url, max: options.snapshotPoolSize ?? 4, types });
  // An idle pooled connection that the server drops must not crash the process.
  pool.on('error', () => undefined);
  snapshotPool.on('error', () => undefined);
  try {
    const c = await pool.connect();
    try {
      await initPgSchema(c, schema);
      const { rows } = await c.query<{ value: string }>(`SELECT value FROM ${schema}.meta WHERE key = 'server_id'`);
      return new PgStore(pool, snapshotPool, schema, options.url, rows[0]!.value);
    } finally {
      c.release();
    }
  } catch (err) {
    await Promise.all([pool.end(), snapshotPool.end()]).catch(() => undefined);
    if (err instanceof TidelineError) throw err;
    throw new TidelineError('INTERNAL', `cannot open the PostgreSQL store (schema ${schema}): ${messageOf(err)}`, {
      cause: err,
      hint: 'check the --store URL, that PostgreSQL is running, and that its user may create a schema and tables',
    });
  }
}

interface OutcomeRow {
  lsn: number;
  term: number;
  client_id: string;
  seq: number;
  code: string | null;
  message: string | null;
  retryable: boolean | null;
  ts: number;
}

/** Origins read at a time past a page's end to find where its last mutation ends. */
const BOUNDARY_STEP = 64;
/** Changes read at a time while a page fills its byte budget. */
const BUDGET_STEP = 64;

/**
 * The `AsyncStore` on PostgreSQL, shared by any number of nodes (each with
 * its own PgStore on the same schema).
 *
 * LSNs in commit order across nodes: every write transaction starts by
 * locking the one row of `head` (`SELECT ... FOR UPDATE`) and holds it to
 * its commit. So write transactions run one at a time across all nodes; each
 * takes LSNs from the head it read under the lock, and the next one cannot
 * read the head before this one is committed and visible. A reader that sees
 * LSN n therefore sees every LSN below n: no later commit can fill a hole
 * behind it. The same lock makes exactly-once hold across nodes: a
 * transaction reads a client's last seq after taking it, so a retry on node
 * B of a mutation committed on node A finds it settled.
 *
 * Each commit that moved the head notifies `tideline_<schema>` with the new
 * head LSN (delivered at commit, in commit order): `onCommit` listens, the
 * wake-up for nodes tailing the log. Compaction takes a transaction-level
 * advisory lock and is skipped by a node that finds it held.
 */
export class PgStore implements AsyncStore {
  readonly schema: string;
  readonly channel: string;
  private closed = false;
  private listener: pg.Client | null = null;
  private listening: Promise<pg.Client> | null = null;
  private readonly commitListeners = new Set<(head: number) => void>();
  /** This process's name in the node registry, and the node ids it has beaten for (see pg-nodes.ts). */
  private readonly instance = randomUUID();
  private readonly announced = new Set<string>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly snapshotPool: pg.Pool,
    schema: string,
    private readonly url: string,
    private readonly serverId: string,
  ) {
    this.schema = schema;
    this.channel = `tideline_${schema}`.slice(0, 63);
  }

  async meta(): Promise<StoreMeta> {
    const h = await this.readHead();
    return { serverId: this.serverId, term: h.term, headLsn: h.lsn, horizon: h.horizon };
  }

  async getDoc(collection: string, id: string): Promise<StoredDoc | undefined> {
    const [row] = await this.rows<{ owner: string | null; lsn: number; body: string | null }>(
      `SELECT owner, lsn, body FROM ${this.schema}.docs WHERE collection = $1 AND id = $2`,
      [collection, id],
    );
    if (row === undefined) return undefined;
    return { collection, id, doc: row.body === null ? null : parseDoc(row.body), owner: row.owner, lsn: row.lsn };
  }

  async transact<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> {
    return this.locked(async (ops) => {
      let active = true;
      let tail: Promise<unknown> = Promise.resolve();
      // Calls run one after another in call order, awaited or not: one connection, one statement at a time.
      const op =
        <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
        (...args: A): Promise<R> => {
          if (!active) {
            return Promise.reject(new TidelineError('INTERNAL', 'a store transaction was used after it ended'));
          }
          const run = tail.then(() => call(...args));
          tail = run.then(
            () => undefined,
            () => undefined,
          );
          return run;
        };
      const tx: AsyncStoreTx = {
        getDoc: op((collection: string, id: string) => ops.getDoc(collection, id)),
        lastSeq: op((clientId: string) => ops.lastSeq(clientId)),
        rejection: op((clientId: string, seq: number) => ops.rejection(clientId, seq)),
        append: op((...a: Parameters<AsyncStoreTx['append']>) => ops.append(...a)),
        recordOutcome: op((...a: Parameters<AsyncStoreTx['recordOutcome']>) => ops.recordOutcome(...a)),
        appendOutcome: op((...a: Parameters<AsyncStoreTx['appendOutcome']>) => ops.appendOutcome(...a)),
        forgetRejections: op((clientId: string, below: number) => ops.forgetRejections(clientId, below)),
        serverOrigin: op((origin: string) => ops.serverOrigin(origin)),
        clientUser: op((clientId: string) => ops.clientUser(clientId)),
        bindClient: op((clientId: string, userId: string) => ops.bindClient(clientId, userId)),
        usage: op((collection: string, userId: string) => ops.usage(collection, userId)),
        docAuthor: op((collection: string, id: string) => ops.docAuthor(collection, id)),
      };
      try {
        const result = await fn(tx);
        // Calls fn started but did not await finish before the commit (or fail it).
        await tail;
        return result;
      } finally {
        active = false;
        await tail;
      }
    });
  }

  async readChanges(after: number, limit: number): Promise<Change[]> {
    if (!(limit >= 1)) return [];
    const rows = await this.rows<ChangeRow>(
      `SELECT lsn, term, collection, id, owner, body, client_id, seq, ts FROM ${this.schema}.changes
       WHERE lsn > $1 ORDER BY lsn LIMIT $2`,
      [after, Math.floor(Math.min(limit, Number.MAX_SAFE_INTEGER))],
    );
    return rows.map(changeOf);
  }

  /** See `Store.readLog`. Read in one REPEATABLE READ snapshot, so the changes and outcomes it merges agree. */
  async readLog(after: number, limit: number, maxBytes = Infinity): Promise<LogPage> {
    return this.readOnly((c) => readLogOn(c, this.schema, after, limit, maxBytes));
  }

  async scanScope(scope: Scope): Promise<Array<{ collection: string; doc: Doc }>> {
    const rows = await this.rows<{ collection: string; body: string }>(
      `SELECT collection, body FROM ${this.schema}.docs WHERE NOT deleted
       AND (owner IS NULL OR owner = $1 OR collection = ANY($2::text[])) ORDER BY collection, id`,
      [scope.userId, [...(scope.allOf ?? [])]],
    );
    return rows.map((r) => ({ collection: r.collection, doc: parseDoc(r.body) }));
  }

  async openSnapshot(scope: Scope, clientId: string): Promise<AsyncSnapshotCursor> {
    this.assertOpen();
    return openPgSnapshot(this.snapshotPool, this.schema, scope, clientId);
  }

  async query(q: DocQuery): Promise<Doc[]> {
    const { sql, params } = pgQueryStatement(this.schema, q);
    return (await this.rows<{ body: string }>(sql, params)).map((r) => parseDoc(r.body));
  }

  async count(q: Omit<DocQuery, 'limit' | 'orderBy' | 'after'>): Promise<number> {
    const { sql, params } = pgCountStatement(this.schema, q);
    return (await this.rows<{ n: number }>(sql, params))[0]?.n ?? 0;
  }

  async getMany(collection: string, ids: readonly string[], owner?: string): Promise<Doc[]> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const rows = await this.rows<{ id: string; body: string }>(
      `SELECT id, body FROM ${this.schema}.docs WHERE collection = $1 AND id = ANY($2::text[]) AND NOT deleted
       ${owner === undefined ? '' : 'AND owner = $3'}`,
      owner === undefined ? [collection, unique] : [collection, unique, owner],
    );
    const byId = new Map(rows.map((r) => [r.id, r.body]));
    return unique.flatMap((id) => {
      const body = byId.get(id);
      return body === undefined ? [] : [parseDoc(body)];
    });
  }

  async pruneServerOrigins(before: number, limit: number): Promise<number> {
    const s = this.schema;
    const rows = await this.rows<{ origin: string }>(
      `WITH old AS (
         DELETE FROM ${s}.idempotency WHERE origin IN (
           SELECT origin FROM ${s}.idempotency WHERE ts < $1 ORDER BY ts LIMIT $2 FOR UPDATE SKIP LOCKED
         ) RETURNING origin
       ), c AS (DELETE FROM ${s}.clients WHERE client_id IN (SELECT origin FROM old)),
       r AS (DELETE FROM ${s}.rejections WHERE client_id IN (SELECT origin FROM old))
       SELECT origin FROM old`,
      [before, Math.max(0, Math.floor(limit))],
    );
    return rows.length;
  }

  async logStats(): Promise<{ count: number; oldestTs: number | null }> {
    const s = this.schema;
    // LSNs are consecutive and compaction drops a prefix, so the log holds exactly (horizon, head].
    const [row] = await this.rows<{ lsn: number; horizon: number; ts: number | null }>(
      `SELECT h.lsn, h.horizon, (
         SELECT ts FROM (SELECT ts FROM ${s}.changes WHERE lsn = h.horizon + 1
                         UNION ALL SELECT ts FROM ${s}.outcomes WHERE lsn = h.horizon + 1) AS t LIMIT 1
       ) AS ts FROM ${s}.head h WHERE h.id = 1`,
      [],
    );
    return { count: row!.lsn - row!.horizon, oldestTs: row!.ts ?? null };
  }

  async compact(upTo: number): Promise<{ removedChanges: number; removedTombstones: number; horizon: number }> {
    if (!Number.isSafeInteger(upTo))
      throw new TidelineError('BAD_REQUEST', `compact needs an integer LSN, got ${upTo}`);
    const s = this.schema;
    return this.inTransaction(async (c) => {
      // One node compacts at a time; another that finds the lock taken leaves it to that one.
      const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS ok', [
        `tideline-compact:${s}`,
      ]);
      const head = await this.readHead(c);
      const target = Math.min(upTo, head.lsn);
      if (got.rows[0]?.ok !== true || target <= head.horizon) {
        return { removedChanges: 0, removedTombstones: 0, horizon: head.horizon };
      }
      const changes = await c.query(`DELETE FROM ${s}.changes WHERE lsn <= $1`, [target]);
      const outcomes = await c.query(`DELETE FROM ${s}.outcomes WHERE lsn <= $1`, [target]);
      const tombstones = await c.query(`DELETE FROM ${s}.docs WHERE deleted AND lsn <= $1`, [target]);
      // Last, so the row lock waits only for commits in flight, not for the deletes.
      const [after] = (
        await c.query<{ horizon: number }>(
          `UPDATE ${s}.head SET horizon = GREATEST(horizon, $1) WHERE id = 1 RETURNING horizon`,
          [target],
        )
      ).rows;
      return {
        removedChanges: (changes.rowCount ?? 0) + (outcomes.rowCount ?? 0),
        removedTombstones: tombstones.rowCount ?? 0,
        horizon: after!.horizon,
      };
    });
  }

  async setTerm(term: number): Promise<void> {
    await this.locked(async (ops, c) => {
      if (!Number.isSafeInteger(term) || term < ops.head.term) {
        throw new TidelineError('INTERNAL', `cannot set the term to ${term}: the store is at term ${ops.head.term}`, {
          hint: 'terms only rise; a node that meets a higher term steps down rather than lowering its own',
        });
      }
      if (term === ops.head.term) return;
      const terms = await this.termsOn(c);
      await this.setMeta(c, 'terms', JSON.stringify([...terms, { term, startLsn: ops.head.lsn }]));
      ops.head.term = term;
    });
  }

  async terms(): Promise<TermStart[]> {
    return this.termsOn(this.pool);
  }

  async adoptTerms(terms: readonly TermStart[]): Promise<void> {
    const last = terms[terms.length - 1];
    if (!last) throw new TidelineError('INTERNAL', 'cannot adopt an empty term history');
    await this.locked(async (ops, c) => {
      await this.setMeta(c, 'terms', JSON.stringify(terms));
      ops.head.term = last.term;
    });
  }

  async applyReplicated(
    changes: readonly Change[],
    outcomes: readonly OutcomeEntry[] = [],
    bindings: Readonly<Record<string, string>> = {},
  ): Promise<void> {
    if (changes.length === 0 && outcomes.length === 0 && Object.keys(bindings).length === 0) return;
    await this.locked(async (ops) => {
      for (const [clientId, userId] of Object.entries(bindings)) await ops.bindClient(clientId, userId);
      for (const entry of mergeByLsn(changes, outcomes)) await ops.applyEntry(entry);
    });
  }

  async bindingsOf(clientIds: Iterable<string>): Promise<Record<string, string>> {
    const ids = [...new Set(clientIds)];
    if (ids.length === 0) return {};
    const rows = await this.rows<{ client_id: string; user_id: string }>(
      `SELECT client_id, user_id FROM ${this.schema}.clients WHERE client_id = ANY($1::text[]) AND user_id IS NOT NULL`,
      [ids],
    );
    return Object.fromEntries(rows.map((r) => [r.client_id, r.user_id]));
  }

  async clusterId(): Promise<string | null> {
    return (await this.getMeta(this.pool, 'cluster_id')) ?? null;
  }

  async setClusterId(clusterId: string): Promise<void> {
    await this.setMeta(this.pool, 'cluster_id', clusterId);
  }

  async exportSnapshot(): Promise<ReplicaSnapshot> {
    const s = this.schema;
    return this.readOnly(async (c) => {
      const head = await this.readHead(c);
      const terms = await this.termsOn(c);
      const docs = (
        await c.query<{
          collection: string;
          id: string;
          owner: string | null;
          lsn: number;
          body: string;
          author: string | null;
        }>(`SELECT collection, id, owner, lsn, body, author FROM ${s}.docs WHERE NOT deleted ORDER BY collection, id`)
      ).rows.map((r): SnapshotDoc => ({
        collection: r.collection,
        id: r.id,
        owner: r.owner,
        lsn: r.lsn,
        doc: parseDoc(r.body),
        author: r.author,
      }));
      const clients = (
        await c.query<{ client_id: string; last_seq: number; user_id: string | null }>(
          `SELECT client_id, last_seq, user_id FROM ${s}.clients WHERE last_seq > 0 OR user_id IS NOT NULL ORDER BY client_id`,
        )
      ).rows.map((r) => ({
        clientId: r.client_id,
        lastSeq: r.last_seq,
        ...(r.user_id === null ? {} : { userId: r.user_id }),
      }));
      const rejections = (
        await c.query<{ client_id: string; seq: number; code: string; message: string; retryable: boolean }>(
          `SELECT r.client_id, r.seq, r.code, r.message, r.retryable FROM ${s}.rejections r
           JOIN ${s}.clients c ON c.client_id = r.client_id WHERE r.seq > c.last_seq - $1 ORDER BY r.client_id, r.seq`,
          [REJECTION_WINDOW],
        )
      ).rows.map((r) => ({
        clientId: r.client_id,
        seq: r.seq,
        error: { code: r.code as ErrorCode, message: r.message, retryable: r.retryable },
      }));
      return { asOf: head.lsn, terms, docs, clients, rejections };
    });
  }

  async importSnapshot(snapshot: ReplicaSnapshot): Promise<void> {
    const last = snapshot.terms[snapshot.terms.length - 1];
    if (!last) throw new TidelineError('INTERNAL', 'a snapshot needs a term history');
    const s = this.schema;
    await this.locked(async (ops, c) => {
      await c.query(
        `TRUNCATE ${s}.docs, ${s}.changes, ${s}.outcomes, ${s}.clients, ${s}.rejections, ${s}.idempotency, ${s}.usage`,
      );
      for (let i = 0; i < snapshot.docs.length; i += 500) {
        const page = snapshot.docs.slice(i, i + 500);
        await c.query(
          `INSERT INTO ${s}.docs (collection, id, owner, lsn, deleted, body, author)
           SELECT collection, id, owner, lsn, false, body, author
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
             AS t(collection, id, owner, lsn, body, author)`,
          [
            page.map((d) => d.collection),
            page.map((d) => d.id),
            page.map((d) => d.owner),
            page.map((d) => d.lsn),
            page.map((d) => JSON.stringify(d.doc)),
            page.map((d) => d.author ?? d.owner),
          ],
        );
      }
      await c.query(rebuildUsageSql(s));
      for (const cl of snapshot.clients) {
        await c.query(
          `INSERT INTO ${s}.clients (client_id, last_seq, user_id) VALUES ($1, $2, $3)
           ON CONFLICT (client_id) DO UPDATE SET last_seq = excluded.last_seq, user_id = excluded.user_id`,
          [cl.clientId, cl.lastSeq, cl.userId ?? null],
        );
      }
      for (const r of snapshot.rejections) await ops.keepRejection(r.clientId, r.seq, r.error);
      await this.setMeta(c, 'terms', JSON.stringify(snapshot.terms));
      ops.head.lsn = snapshot.asOf;
      ops.head.horizon = snapshot.asOf;
      ops.head.term = last.term;
    });
  }

  /**
   * Calls `listener` with the head LSN of every commit of any node on this
   * schema (NOTIFY, in commit order; a notification may cover several
   * commits). A wake-up only: read the log by LSN from your checkpoint.
   * Resolves once listening. Returns the unsubscribe.
   */
  async onCommit(listener: (head: number) => void): Promise<() => void> {
    this.assertOpen();
    this.commitListeners.add(listener);
    await this.listen();
    return () => this.commitListeners.delete(listener);
  }

  /**
   * Says in the node registry that `nodeId` is alive now, with its URL and
   * sessions (call it every few seconds), and forgets nodes unseen for a day.
   * `duplicate` in the answer: another process beat for the same node id
   * since this store's previous heartbeat.
   */
  async heartbeat(beat: NodeHeartbeat): Promise<HeartbeatResult> {
    this.assertOpen();
    const first = !this.announced.has(beat.nodeId);
    const result = await heartbeatNode(this.pool, this.schema, beat, this.instance, first);
    this.announced.add(beat.nodeId);
    return result;
  }

  /** The nodes whose last heartbeat is at most `staleAfterMs` old (PostgreSQL's clock), by node id. */
  async clusterNodes(staleAfterMs: number): Promise<ClusterNodeRow[]> {
    this.assertOpen();
    return listNodes(this.pool, this.schema, staleAfterMs);
  }

  /** Takes `nodeId` out of the registry (a clean close), unless another process has beaten for it since. */
  async leave(nodeId: string): Promise<void> {
    this.assertOpen();
    await removeNode(this.pool, this.schema, nodeId, this.instance);
    this.announced.delete(nodeId);
  }

  /** Live and deleted documents per collection (the start-up check's unknown collections), by collection. */
  async countByCollection(): Promise<Array<{ collection: string; live: number; deleted: number }>> {
    return this.rows<{ collection: string; live: number; deleted: number }>(
      `SELECT collection, COUNT(*) FILTER (WHERE NOT deleted)::bigint AS live,
         COUNT(*) FILTER (WHERE deleted)::bigint AS deleted
       FROM ${this.schema}.docs GROUP BY collection ORDER BY collection`,
      [],
    );
  }

  /** The app schema's name and version the cluster was last started with (as SqliteStore.appSchema). */
  async appSchema(): Promise<{ name: string; version: number } | null> {
    const value = await this.getMeta(this.pool, 'app_schema');
    if (value === undefined) return null;
    const parsed = JSON.parse(value) as { name?: unknown; version?: unknown };
    return typeof parsed.name === 'string' && typeof parsed.version === 'number'
      ? { name: parsed.name, version: parsed.version }
      : null;
  }

  async recordAppSchema(schema: { name: string; version: number }): Promise<void> {
    await this.setMeta(this.pool, 'app_schema', JSON.stringify({ name: schema.name, version: schema.version }));
  }

  /** The app's expression indexes (see pg-query.ts), as SqliteStore.ensureIndexes. Idempotent. */
  async ensureIndexes(collections: Readonly<Record<string, readonly string[]>>): Promise<void> {
    // Nodes starting together take turns: two concurrent `CREATE INDEX IF NOT EXISTS` of one name can
    // both pass the check, and the second then fails on pg_class's unique index.
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tideline-indexes:${this.schema}`]);
      for (const [collection, keys] of Object.entries(collections)) {
        for (const key of keys) await c.query(pgIndexSql(this.schema, collection, key.split('+')));
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
    await this.pool.query(`ANALYZE ${this.schema}.docs`);
  }

  /** Drops this store's schema and everything in it (tests, and an operator starting over). Closes the store. */
  async dropSchema(): Promise<void> {
    await this.pool.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const listener = this.listener;
    this.listener = null;
    await Promise.all([this.pool.end(), this.snapshotPool.end(), listener?.end().catch(() => undefined)]);
  }

  /**
   * The LISTEN connection, made on first use. When it drops (PostgreSQL
   * restarted, the session was ended), it is made again, and every listener
   * is then woken with the head as it is: commits made while nobody listened
   * sent no notification, and a listener that reads from its checkpoint on
   * each wake-up catches up with them.
   */
  private listen(): Promise<pg.Client> {
    this.listening ??= (async () => {
      const client = new pg.Client({ connectionString: this.url, types });
      client.on('error', () => undefined);
      client.on('notification', (n) => {
        if (n.channel !== this.channel) return;
        this.wake(Number(n.payload));
      });
      client.on('end', () => {
        if (this.listener !== client) return;
        this.listener = null;
        this.listening = null;
        this.relisten(0);
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${this.channel}`);
      } catch (err) {
        this.listening = null;
        await client.end().catch(() => undefined);
        throw err;
      }
      this.listener = client;
      return client;
    })();
    return this.listening;
  }

  private relisten(attempt: number): void {
    if (this.closed || this.commitListeners.size === 0) return;
    // 0.1 s, doubling, at most 5 s between attempts while PostgreSQL is away.
    const delay = Math.min(5000, 100 * 2 ** attempt);
    setTimeout(() => {
      if (this.closed) return;
      this.listen()
        .then(() => this.meta())
        .then(
          (meta) => this.wake(meta.headLsn),
          () => this.relisten(attempt + 1),
        );
    }, delay).unref();
  }

  private wake(head: number): void {
    for (const l of this.commitListeners) l(head);
  }

  /**
   * A write transaction: locks the `head` row first (see the class comment),
   * runs `fn`, writes the head back and notifies when it moved, commits.
   */
  private async locked<T>(fn: (ops: PgTxOps, c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.inTransaction(async (c) => {
      const [row] = (
        await c.query<HeadState>({
          name: `tl_lock_head_${this.schema}`,
          text: `SELECT lsn, term, horizon FROM ${this.schema}.head WHERE id = 1 FOR UPDATE`,
        })
      ).rows;
      const before = { ...row! };
      const ops = new PgTxOps(c, this.schema, { ...row! });
      const result = await fn(ops, c);
      await ops.flush();
      const h = ops.head;
      if (h.lsn !== before.lsn) {
        // One round trip: the head, and the NOTIFY delivered at commit, in commit order, to every listening node.
        await c.query({
          name: `tl_move_head_${this.schema}`,
          text: `WITH h AS (UPDATE ${this.schema}.head SET lsn = $1, term = $2, horizon = $3 WHERE id = 1)
           SELECT pg_notify($4, $5)`,
          values: [h.lsn, h.term, h.horizon, this.channel, String(h.lsn)],
        });
      } else if (h.term !== before.term || h.horizon !== before.horizon) {
        await c.query(`UPDATE ${this.schema}.head SET lsn = $1, term = $2, horizon = $3 WHERE id = 1`, [
          h.lsn,
          h.term,
          h.horizon,
        ]);
      }
      return result;
    });
  }

  private async inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    this.assertOpen();
    const c = await this.pool.connect();
    let broken: Error | undefined;
    // A checked-out client has no pool listener: an error between statements (the server ended the
    // session) would crash the process. It is kept, and the next statement fails with it.
    const onError = (err: Error): void => {
      broken = err;
    };
    c.on('error', onError);
    try {
      await c.query(begin);
      try {
        const result = await fn(c);
        await c.query('COMMIT');
        return result;
      } catch (err) {
        await c.query('ROLLBACK').catch((e: unknown) => {
          broken = e instanceof Error ? e : new Error(String(e));
        });
        throw err;
      }
    } finally {
      c.removeListener('error', onError);
      c.release(broken);
    }
  }

  private readOnly<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.inTransaction(fn, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  private async rows<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    this.assertOpen();
    return (await this.pool.query<R>(sql, params)).rows;
  }

  private async readHead(c: pg.Pool | pg.PoolClient = this.pool): Promise<HeadState> {
    this.assertOpen();
    const { rows } = await c.query<HeadState>(`SELECT lsn, term, horizon FROM ${this.schema}.head WHERE id = 1`);
    return rows[0]!;
  }

  private async termsOn(c: pg.Pool | pg.PoolClient): Promise<TermStart[]> {
    const value = await this.getMeta(c, 'terms');
    return value === undefined ? [{ term: 1, startLsn: 0 }] : (JSON.parse(value) as TermStart[]);
  }

  private async getMeta(c: pg.Pool | pg.PoolClient, key: string): Promise<string | undefined> {
    this.assertOpen();
    const { rows } = await c.query<{ value: string }>(`SELECT value FROM ${this.schema}.meta WHERE key = $1`, [key]);
    return rows[0]?.value;
  }

  private async setMeta(c: pg.Pool | pg.PoolClient, key: string, value: string): Promise<void> {
    this.assertOpen();
    await c.query(
      `INSERT INTO ${this.schema}.meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      [key, value],
    );
  }

  private assertOpen(): void {
    if (this.closed) throw new TidelineError('INTERNAL', `the PostgreSQL store (schema ${this.schema}) is closed`);
  }
}

/** `Store.readLog` on one snapshot: the reads SqliteStore.readLog makes, cut the same way (log-page.ts). */
async function readLogOn(
  c: pg.PoolClient,
  s: string,
  after: number,
  limit: number,
  maxBytes: number,
): Promise<LogPage> {
  const n = Math.floor(Math.min(Math.max(limit, 1), Number.MAX_SAFE_INTEGER));
  const selectChanges = async (from: number, count: number): Promise<ChangeRow[]> =>
    (
      await c.query<ChangeRow>(
        `SELECT lsn, term, collection, id, owner, body, client_id, seq, ts FROM ${s}.changes
         WHERE lsn > $1 ORDER BY lsn LIMIT $2`,
        [from, count],
      )
    ).rows;
  // Changes only while they fit the byte budget, a few at a time, so a page of large documents is never read whole.
  const changeRows: ChangeRow[] = [];
  let cutAt = Infinity;
  if (maxBytes === Infinity) changeRows.push(...(await selectChanges(after, n)));
  else {
    let bytes = 0;
    let from = after;
    fill: while (changeRows.length < n) {
      const want = Math.min(BUDGET_STEP, n - changeRows.length);
      const chunk = await selectChanges(from, want);
      for (const r of chunk) {
        const size = changeRowBytes(r);
        if (changeRows.length > 0 && bytes + size > maxBytes) {
          cutAt = r.lsn;
          break fill;
        }
        changeRows.push(r);
        bytes += size;
        from = r.lsn;
      }
      if (chunk.length < want) break;
    }
  }
  const outcomes = (
    await c.query<OutcomeRow>(
      `SELECT lsn, term, client_id, seq, code, message, retryable, ts FROM ${s}.outcomes
       WHERE lsn > $1 ORDER BY lsn LIMIT $2`,
      [after, n],
    )
  ).rows.map(outcomeOf);
  const { page, bytes } = cutPage(changeRows, outcomes, cutAt, after, n, maxBytes);
  // Finish the mutation the page ends in. Only the origins are read to find where it ends (usually
  // at once), then its rows.
  const last = openMutation(page);
  if (last !== undefined) {
    const to = page.to;
    let end = to;
    for (;;) {
      const next = (
        await c.query<{ lsn: number; client_id: string | null; seq: number | null }>(
          `SELECT lsn, client_id, seq FROM ${s}.changes WHERE lsn > $1 ORDER BY lsn LIMIT $2`,
          [end, BOUNDARY_STEP],
        )
      ).rows;
      const i = continuing(next, end, last);
      end += i;
      if (i < BOUNDARY_STEP) break;
    }
    if (end > to) finishMutation(page, last, await selectChanges(to, end - to), end, after, bytes, maxBytes);
  }
  return page;
}

function outcomeOf(r: OutcomeRow): OutcomeEntry {
  const error: WireErrorShape | null =
    r.code === null ? null : { code: r.code as ErrorCode, message: r.message ?? '', retryable: r.retryable === true };
  return { lsn: r.lsn, term: r.term, clientId: r.client_id, seq: r.seq, error, ts: r.ts };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
