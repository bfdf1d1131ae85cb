import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineSchema } from '../../shared/schema/define-schema';
import { createServer } from '../../server/index';
import type { TidelineServer } from '../../server/index';
import { createTestDatabase } from '../../server/store/pg-test-db';
import type { TestDatabase } from '../../server/store/pg-test-db';
import { TEST_ADMIN_TOKEN, TEST_SECRET } from '../support/server-process';

/** `createServer({ store: 'postgres://…' })`: two nodes in one process on one database, seeded once, each reading the other's writes. */

const schema = defineSchema({
  name: 'todo',
  version: 1,
  collections: { todos: { read: 'public', write: 'any', indexes: ['done'] } },
  mutators: {},
});
const seed = Array.from({ length: 20 }, (_, i) => ({
  collection: 'todos',
  doc: { id: `s${String(i).padStart(2, '0')}`, title: `seeded ${i}`, done: 1 },
}));

describe('createServer on PostgreSQL', () => {
  let db: TestDatabase;
  const servers: TidelineServer[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await db.drop();
  });

  const start = (nodeId: string): Promise<TidelineServer> =>
    createServer({
      schema,
      store: db.url,
      pgSchema: 'app_nodes',
      nodeId,
      port: 0,
      auth: { secret: TEST_SECRET },
      adminToken: TEST_ADMIN_TOKEN,
      seed,
      log: () => undefined,
    });

  it('seeds once, commits on one node, reads on the other, and lists both', async () => {
    const [a, b] = await Promise.all([start('a'), start('b')]);
    servers.push(a, b);
    const first = await b.query('todos', { filter: 'done:eq:1', limit: 100 });
    expect(first.docs).toHaveLength(20);
    expect(first.headLsn).toBe(20);

    const put = await a.mutate('put', { collection: 'todos', doc: { id: 't1', title: 'Milk', done: 0 } });
    expect(put).toEqual({ status: 'applied', lsn: 21 });
    expect((await b.query('todos', { filter: 'done:eq:0' })).docs.map((d) => d.id)).toEqual(['t1']);
    // The same idempotency key on the other node commits nothing new.
    const key = { idempotencyKey: 'order-1' };
    expect(await a.mutate('put', { collection: 'todos', doc: { id: 't2', title: 'Eggs', done: 0 } }, key)).toEqual({
      status: 'applied',
      lsn: 22,
    });
    expect(
      await b.mutate('put', { collection: 'todos', doc: { id: 't2', title: 'Eggs', done: 0 } }, key),
    ).toMatchObject({ status: 'duplicate' });

    const res = await fetch(`${a.url}/admin/status`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
    const status = (await res.json()) as {
      headLsn: number;
      pgSchema: string;
      cluster: { nodes: Array<{ nodeId: string }> };
    };
    expect(status.headLsn).toBe(22);
    expect(status.pgSchema).toBe('app_nodes');
    expect(status.cluster.nodes.map((n) => n.nodeId)).toEqual(['a', 'b']);
  }, 60_000);
});
