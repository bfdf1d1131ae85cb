import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidelineError } from '../../shared/errors';
import { openPgStore } from './pg-store';
import type { PgStore } from './pg-store';
import { PG_SCHEMA_VERSION } from './pg-schema';
import { createTestDatabase } from './pg-test-db';
import type { TestDatabase } from './pg-test-db';

/*
 * The node registry (pg-nodes.ts) on real PostgreSQL: what `GET
 * /admin/status` shows of the cluster. Times are moved back with SQL on the
 * table instead of waiting, since they come from PostgreSQL's clock.
 */

let db: TestDatabase;
let admin: pg.Client;
beforeAll(async () => {
  db = await createTestDatabase();
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
});
afterAll(async () => {
  await admin.end();
  await db.drop();
});

let n = 0;
async function twoNodes(): Promise<{ a: PgStore; b: PgStore; schema: string; done: () => Promise<void> }> {
  const schema = `reg${++n}`;
  const a = await openPgStore({ url: db.url, schema, poolSize: 2 });
  const b = await openPgStore({ url: db.url, schema, poolSize: 2 });
  return {
    a,
    b,
    schema,
    done: async () => {
      await a.dropSchema();
      await b.close();
    },
  };
}

describe('PgStore node registry', () => {
  it('lists the nodes that beat, with URL and sessions, and keeps a process start time across its beats', async () => {
    const { a, b, schema, done } = await twoNodes();
    try {
      await a.heartbeat({ nodeId: 'node-a', url: 'http://127.0.0.1:3001', sessions: 3 });
      await b.heartbeat({ nodeId: 'node-b', url: 'http://127.0.0.1:3002', sessions: 0 });
      const listed = await b.clusterNodes(10_000);
      expect(listed.map((x) => [x.nodeId, x.url, x.sessions])).toEqual([
        ['node-a', 'http://127.0.0.1:3001', 3],
        ['node-b', 'http://127.0.0.1:3002', 0],
      ]);
      const first = listed[0]!;
      expect(first.seenAt).toBeGreaterThanOrEqual(first.startedAt);
      expect(first.ageMs).toBeGreaterThanOrEqual(0);
      // A later beat moves seen_at and the sessions, not the start.
      await admin.query(
        `UPDATE ${schema}.nodes SET seen_at = seen_at - interval '5 seconds', started_at = started_at - interval '1 hour'`,
      );
      await a.heartbeat({ nodeId: 'node-a', url: 'http://127.0.0.1:3001', sessions: 7 });
      const again = (await a.clusterNodes(10_000)).find((x) => x.nodeId === 'node-a')!;
      expect(again.sessions).toBe(7);
      expect(again.startedAt).toBe(first.startedAt - 3600_000);
      expect(again.seenAt).toBeGreaterThanOrEqual(first.seenAt);
    } finally {
      await done();
    }
  });

  it('leaves out nodes unseen within the window, and forgets those unseen for a day', async () => {
    const { a, b, schema, done } = await twoNodes();
    try {
      await a.heartbeat({ nodeId: 'a', url: 'http://a', sessions: 1 });
      await b.heartbeat({ nodeId: 'b', url: 'http://b', sessions: 2 });
      await admin.query(`UPDATE ${schema}.nodes SET seen_at = now() - interval '30 seconds' WHERE node_id = 'b'`);
      expect((await a.clusterNodes(10_000)).map((x) => x.nodeId)).toEqual(['a']);
      const late = (await a.clusterNodes(60_000)).find((x) => x.nodeId === 'b')!;
      expect(late.ageMs).toBeGreaterThanOrEqual(30_000);
      await admin.query(`UPDATE ${schema}.nodes SET seen_at = now() - interval '25 hours' WHERE node_id = 'b'`);
      await a.heartbeat({ nodeId: 'a', url: 'http://a', sessions: 1 });
      const rows = await admin.query<{ node_id: string }>(`SELECT node_id FROM ${schema}.nodes`);
      expect(rows.rows.map((r) => r.node_id)).toEqual(['a']);
    } finally {
      await done();
    }
  });

  it("deletes a node's row on leave, but not one another process has taken over since", async () => {
    const { a, b, done } = await twoNodes();
    try {
      await a.heartbeat({ nodeId: 'a', url: 'http://a', sessions: 0 });
      await a.heartbeat({ nodeId: 'shared', url: 'http://old', sessions: 0 });
      // The node restarted (a new process, b) before the old one closed.
      await b.heartbeat({ nodeId: 'shared', url: 'http://new', sessions: 0 });
      await a.leave('a');
      await a.leave('shared');
      expect((await b.clusterNodes(10_000)).map((x) => [x.nodeId, x.url])).toEqual([['shared', 'http://new']]);
      await b.leave('shared');
      expect(await b.clusterNodes(10_000)).toEqual([]);
    } finally {
      await done();
    }
  });

  it('tells a node that another live process beats for its node id, and restarts started_at for a new process', async () => {
    const { a, b, schema, done } = await twoNodes();
    try {
      expect(await a.heartbeat({ nodeId: 'x', url: 'http://a', sessions: 0 })).toEqual({ duplicate: false });
      expect(await a.heartbeat({ nodeId: 'x', url: 'http://a', sessions: 0 })).toEqual({ duplicate: false });
      await admin.query(`UPDATE ${schema}.nodes SET started_at = now() - interval '1 hour'`);
      // A new process taking an id over is not a duplicate (a restart), but its start is its own.
      expect(await b.heartbeat({ nodeId: 'x', url: 'http://b', sessions: 0 })).toEqual({ duplicate: false });
      const row = (await a.clusterNodes(10_000))[0]!;
      expect(row.seenAt - row.startedAt).toBeLessThan(60_000);
      // The first process beats again: someone else wrote its row in between.
      expect(await a.heartbeat({ nodeId: 'x', url: 'http://a', sessions: 0 })).toEqual({ duplicate: true });
    } finally {
      await done();
    }
  });

  it('refuses a node id that is not a plain name', async () => {
    const { a, done } = await twoNodes();
    try {
      for (const nodeId of ['', 'a b', "x'; drop table nodes; --", 'n'.repeat(129)]) {
        await expect(a.heartbeat({ nodeId, url: 'http://a', sessions: 0 })).rejects.toBeInstanceOf(TidelineError);
      }
    } finally {
      await done();
    }
  });

  it('adds the registry to a schema of version 1', async () => {
    const schema = `reg${++n}`;
    const old = await openPgStore({ url: db.url, schema, poolSize: 1 });
    await admin.query(`DROP TABLE ${schema}.nodes`);
    await admin.query(`UPDATE ${schema}.meta SET value = '1' WHERE key = 'schema_version'`);
    await old.close();
    const store = await openPgStore({ url: db.url, schema, poolSize: 1 });
    try {
      const v = await admin.query<{ value: string }>(`SELECT value FROM ${schema}.meta WHERE key = 'schema_version'`);
      expect(v.rows[0]!.value).toBe(String(PG_SCHEMA_VERSION));
      await store.heartbeat({ nodeId: 'a', url: 'http://a', sessions: 0 });
      expect((await store.clusterNodes(10_000)).map((x) => x.nodeId)).toEqual(['a']);
    } finally {
      await store.dropSchema();
    }
  });
});
