import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogTail } from './log-tail';
import { openPgStore } from './pg-store';
import type { PgStore } from './pg-store';
import { createTestDatabase } from './pg-test-db';
import type { TestDatabase } from './pg-test-db';

/*
 * Two PgStore "nodes" on one schema, committing at once: the guarantees that
 * only a shared store can break (issue 11): LSNs in commit order with no
 * hole a tailing reader could step over, and exactly once per (client, seq)
 * whichever node a retry reaches.
 */

const TS = 1_700_000_000_000;
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

/** Lets other transactions' statements in between ours, so commits of both nodes interleave. */
const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('PgStore: two nodes on one schema', () => {
  it('gives every LSN once, in commit order, and a reader woken by NOTIFY never skips one that commits later', async () => {
    const schema = 'nodes_lsn';
    const nodes: PgStore[] = [
      await openPgStore({ url: db.url, schema, poolSize: 6 }),
      await openPgStore({ url: db.url, schema, poolSize: 6 }),
    ];
    const reader = await openPgStore({ url: db.url, schema, poolSize: 2 });
    try {
      // The reader tails the log as a node serving its sessions would: each NOTIFY wakes a LogTail.
      const seen: number[] = [];
      let notified = 0;
      const gaps: string[] = [];
      const failures: unknown[] = [];
      const tail = new LogTail({
        source: reader,
        from: 0,
        pageSize: 50,
        onPage: (page) => {
          const from = tail.checkpoint;
          const lsns = [...page.changes.map((c) => c.lsn), ...page.outcomes.map((o) => o.lsn)].sort((a, b) => a - b);
          lsns.forEach((lsn, i) => {
            if (lsn !== from + 1 + i) gaps.push(`after ${from} read ${lsns.join(',')}`);
          });
          seen.push(...lsns);
          delivered = page.to;
          if (delivered >= target) tailDone();
        },
        onError: (err) => void failures.push(err),
      });
      // Done when the tail, moved by NOTIFYs alone, has delivered the last LSN and its NOTIFY came.
      let target = Infinity;
      let delivered = 0;
      let tailDone!: () => void;
      const tailDoneP = new Promise<void>((resolve) => (tailDone = resolve));
      let notifiedAll!: () => void;
      const notifiedAllP = new Promise<void>((resolve) => (notifiedAll = resolve));
      const TXS = 240;
      const unsubscribe = await reader.onCommit((head) => {
        notified = Math.max(notified, head);
        if (notified >= target) notifiedAll();
        tail.wake();
      });

      // Many concurrent transactions on both nodes, 1-3 writes each (one of them a no-op outcome).
      const results = await Promise.all(
        Array.from({ length: TXS }, (_, i) =>
          nodes[i % 2]!.transact(async (tx) => {
            const clientId = `k${i % 7}`;
            const seq = (await tx.lastSeq(clientId)) + 1;
            await yieldTurn();
            const writes = i % 3;
            const lsns: number[] = [];
            for (let w = 0; w < writes; w++) {
              const change = await tx.append(
                { collection: 'notes', id: `n${i}-${w}`, doc: { id: `n${i}-${w}`, i }, owner: null },
                { clientId, seq },
                TS + i,
              );
              lsns.push(change.lsn);
              await yieldTurn();
            }
            if (writes === 0) lsns.push((await tx.appendOutcome(clientId, seq, null, TS + i)).lsn);
            else await tx.recordOutcome(clientId, seq, null);
            return lsns;
          }),
        ),
      );
      const all = results.flat().sort((a, b) => a - b);
      const total = all.length;
      expect(all).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      // A transaction's LSNs are consecutive: nothing of another commit lands inside one.
      for (const lsns of results) expect(lsns).toEqual(lsns.map((_, i) => lsns[0]! + i));
      expect((await nodes[1]!.meta()).headLsn).toBe(total);

      target = total;
      if (delivered >= total) tailDone();
      if (notified >= total) notifiedAll();
      await Promise.all([tailDoneP, notifiedAllP]);
      tail.stop();
      unsubscribe();
      expect(failures).toEqual([]);
      expect(gaps).toEqual([]);
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(notified).toBe(total);
      // Each client's seqs were taken under the lock: consecutive, none twice.
      const lastSeqs = await nodes[0]!.transact(async (tx) =>
        Promise.all(Array.from({ length: 7 }, (_, k) => tx.lastSeq(`k${k}`))),
      );
      expect(lastSeqs.reduce((a, b) => a + b, 0)).toBe(TXS);
    } finally {
      await reader.close();
      await nodes[0]!.dropSchema();
      await nodes[1]!.close();
    }
  }, 120_000);

  it('commits a mutation once when its retry reaches the other node at the same time', async () => {
    const schema = 'nodes_once';
    const a = await openPgStore({ url: db.url, schema, poolSize: 4 });
    const b = await openPgStore({ url: db.url, schema, poolSize: 4 });
    try {
      // The server's commit step: a seq at or below the client's last is a duplicate, else it commits.
      const submit = (node: PgStore, seq: number): Promise<'applied' | 'duplicate'> =>
        node.transact(async (tx) => {
          if (seq <= (await tx.lastSeq('shopper'))) return 'duplicate';
          await yieldTurn();
          await tx.append(
            { collection: 'orders', id: `o${seq}`, doc: { id: `o${seq}`, seq }, owner: 'u1' },
            { clientId: 'shopper', seq },
            TS,
          );
          await tx.recordOutcome('shopper', seq, null);
          return 'applied';
        });
      const SEQS = 40;
      for (let seq = 1; seq <= SEQS; seq++) {
        const answers = await Promise.all([submit(a, seq), submit(b, seq), submit(a, seq)]);
        expect(answers.filter((x) => x === 'applied')).toHaveLength(1);
      }
      const changes = await a.readChanges(0, 1000);
      expect(changes.map((c) => c.seq)).toEqual(Array.from({ length: SEQS }, (_, i) => i + 1));
    } finally {
      await a.dropSchema();
      await b.close();
    }
  }, 60_000);

  it('lets one node compact at a time; the other leaves it to that one', async () => {
    const schema = 'nodes_compact';
    const a = await openPgStore({ url: db.url, schema });
    const b = await openPgStore({ url: db.url, schema });
    try {
      await a.transact(async (tx) => {
        for (let i = 0; i < 50; i++) {
          await tx.append({ collection: 'notes', id: `n${i}`, doc: { id: `n${i}` }, owner: null }, null, TS);
        }
      });
      const [x, y] = await Promise.all([a.compact(40), b.compact(40)]);
      expect(x.removedChanges + y.removedChanges).toBe(40);
      expect((await b.meta()).horizon).toBe(40);
      expect((await a.logStats()).count).toBe(10);
    } finally {
      await a.dropSchema();
      await b.close();
    }
  });

  it('ends a transaction that stalls holding the head lock, so the other node commits', async () => {
    const schema = 'nodes_stall';
    const a = await openPgStore({ url: db.url, schema, idleInTransactionTimeoutMs: 300 });
    const b = await openPgStore({ url: db.url, schema, idleInTransactionTimeoutMs: 300 });
    try {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let locked!: () => void;
      const holding = new Promise<void>((resolve) => (locked = resolve));
      const note = (id: string) => ({ collection: 'notes', id, doc: { id }, owner: null });
      const stalled = a.transact(async (tx) => {
        await tx.append(note('n1'), null, TS);
        locked();
        await gate; // a node whose event loop is stuck, with the lock held
        await tx.append(note('n2'), null, TS);
      });
      await holding;
      // Waits for the lock until PostgreSQL ends a's idle session, then commits.
      const change = await b.transact((tx) => tx.append(note('n3'), null, TS));
      expect(change.lsn).toBe(1);
      release();
      await expect(stalled).rejects.toThrow();
      expect(await b.getDoc('notes', 'n1')).toBeUndefined();
      // The node goes on committing on fresh connections.
      expect((await a.transact((tx) => tx.append(note('n4'), null, TS))).lsn).toBe(2);
    } finally {
      await a.dropSchema();
      await b.close();
    }
  });

  it('listens again when its LISTEN session is ended, and wakes its listeners with the head', async () => {
    const schema = 'nodes_listen';
    const reader = await openPgStore({ url: db.url, schema });
    const writer = await openPgStore({ url: db.url, schema });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      let head = 0;
      const waits: Array<{ lsn: number; resolve: () => void }> = [];
      await reader.onCommit((lsn) => {
        head = Math.max(head, lsn);
        for (const w of waits) if (head >= w.lsn) w.resolve();
      });
      const headReaches = (lsn: number): Promise<void> =>
        head >= lsn ? Promise.resolve() : new Promise((resolve) => waits.push({ lsn, resolve }));
      const note = (id: string) => ({ collection: 'notes', id, doc: { id }, owner: null });
      await writer.transact((tx) => tx.append(note('n1'), null, TS));
      await headReaches(1);
      const ended = await admin.query<{ ok: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
         WHERE datname = current_database() AND query = 'LISTEN tideline_${schema}'`,
      );
      expect(ended.rows.map((r) => r.ok)).toEqual([true]);
      // Committed while nobody may be listening: the wake-up after listening again carries it.
      await writer.transact((tx) => tx.append(note('n2'), null, TS));
      await headReaches(2);
      await writer.transact((tx) => tx.append(note('n3'), null, TS));
      await headReaches(3);
    } finally {
      await admin.end();
      await reader.close();
      await writer.dropSchema();
    }
  });
  it('makes the app indexes once when nodes start together', async () => {
    const schema = 'nodes_indexes';
    const nodes = await Promise.all([1, 2, 3].map(() => openPgStore({ url: db.url, schema, poolSize: 2 })));
    try {
      const indexes = { products: ['category', 'price', 'category+price'], notes: ['title'] };
      // Without the lock, concurrent CREATE INDEX IF NOT EXISTS of one name fail on pg_class's unique index.
      await Promise.all(nodes.map((n) => n.ensureIndexes(indexes)));
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        const { rows } = await c.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'ix\\_%'",
          [schema],
        );
        expect(Number(rows[0]!.n)).toBe(4);
      } finally {
        await c.end();
      }
    } finally {
      for (const n of nodes) await n.close();
    }
  });
});
