import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Doc } from '../../shared/json';
import { createTestDatabase } from '../../server/store/pg-test-db';
import type { TestDatabase } from '../../server/store/pg-test-db';
import { localDocs, openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { adminMutate, pgQuery, startPgNodes } from '../support/pg-node';
import type { PgNode } from '../support/pg-node';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { waitFor } from '../support/wait';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { ownedId } from '../../shared/schema/owned-id';

/*
 * Issue 11 end to end: real `server/main.ts --store postgres://…` processes on
 * one fresh database (each test a PostgreSQL schema of its own, so a cluster
 * of its own), clients of the real library and raw protocol clients on
 * 127.0.0.1. What PostgreSQL holds is read back with plain SQL, so the checks
 * do not trust the nodes they check.
 */

describe('Tideline nodes on one PostgreSQL database (real processes)', () => {
  let db: TestDatabase;
  const nodes: PgNode[] = [];
  const clients: NodeClient[] = [];
  const raws: RawClient[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const r of raws) r.close();
    await Promise.all(nodes.map((n) => n.kill9()));
    await db.drop();
  });

  const sql = <R extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<R[]> =>
    pgQuery<R>(db.url, text, params);
  const headOf = async (schema: string): Promise<number> =>
    Number((await sql<{ lsn: string }>(`SELECT lsn FROM ${schema}.head WHERE id = 1`))[0]?.lsn ?? 0);
  /** The live documents of a collection as PostgreSQL holds them, by id. */
  const storedDocs = async (schema: string, collection: string): Promise<Record<string, Doc>> => {
    const rows = await sql<{ id: string; body: string }>(
      `SELECT id, body FROM ${schema}.docs WHERE collection = $1 AND NOT deleted`,
      [collection],
    );
    return Object.fromEntries(rows.map((r) => [r.id, JSON.parse(r.body) as Doc]));
  };
  const clientIdOf = async (schema: string, userId: string): Promise<string> => {
    const rows = await sql<{ client_id: string }>(`SELECT client_id FROM ${schema}.clients WHERE user_id = $1`, [
      userId,
    ]);
    expect(rows).toHaveLength(1);
    return rows[0]!.client_id;
  };
  const open = async (servers: string[], userId: string): Promise<NodeClient> => {
    const c = await openClient(servers, userId);
    clients.push(c);
    return c;
  };
  const raw = async (url: string): Promise<RawClient> => {
    const r = await rawClient(url);
    raws.push(r);
    return r;
  };
  const product = (id: string, stock: number): unknown => ({
    collection: 'products',
    doc: { id, name: id, category: 'tools', price: 1, stock, rating: 4 },
  });

  it('three nodes: clients writing on different nodes converge to the data PostgreSQL holds', async () => {
    const schema = 'converge';
    const [a, b, c] = await startPgNodes(3, { storeUrl: db.url, pgSchema: schema }, nodes);
    const users = ['ann', 'ben', 'cat'];
    const replicas = await Promise.all([a!, b!, c!].map((n, i) => open([n.url], users[i]!)));
    await waitFor('every client live', () => replicas.every((r) => r.status().state === 'live'), 20_000);
    expect(replicas.map((r) => r.status().server)).toEqual([a!.url, b!.url, c!.url]);

    // Each writes its own notes, all three overwrite one shared note, and each deletes one of its own.
    await Promise.all(
      replicas.map(async (r, i) => {
        for (let k = 0; k < 15; k++) {
          await r.mutate.put({ collection: 'notes', doc: { id: `${users[i]}-${k}`, text: `${k}`, createdAt: k } });
          await r.mutate.put({ collection: 'notes', doc: { id: 'shared', text: `${users[i]} ${k}`, createdAt: k } });
        }
        await r.mutate.delete({ collection: 'notes', id: `${users[i]}-3` });
      }),
    );
    await waitFor('every outbox empty', () => replicas.every((r) => r.status().pending === 0), 30_000);
    const head = await headOf(schema);
    expect(head).toBe(3 * 31);
    await waitFor(
      'every client at the shared head',
      () => replicas.every((r) => r.status().lastSyncedLsn === head),
      20_000,
    );
    const stored = await storedDocs(schema, 'notes');
    expect(Object.keys(stored)).toHaveLength(3 * 14 + 1);
    for (const r of replicas) expect(await localDocs(r, 'notes')).toEqual(stored);
  }, 90_000);

  it('kill -9 of the node a client is on: it moves to another node, resumes from its checkpoint, and its writes commit once', async () => {
    const schema = 'failover';
    const [a, b, c] = await startPgNodes(3, { storeUrl: db.url, pgSchema: schema }, nodes);
    await adminMutate(a!.url, 'put', product('p1', 1000), 'seed-p1');
    const client = await open([a!.url, b!.url, c!.url], 'dora');
    let snapshotsAfterKill = 0;
    let killed = false;
    client.on((e) => {
      if (killed && e.type === 'applied' && e.snapshot) snapshotsAfterKill++;
    });
    await waitFor('dora live on node a', () => client.status().state === 'live', 20_000);
    expect(client.status().server).toBe(a!.url);

    // cartAdd adds to the cart: a mutation applied twice shows in the total.
    const acked = 10;
    for (let i = 0; i < acked; i++) await (await client.mutate.cartAdd({ productId: 'p1', qty: 1 })).confirmed();
    const checkpoint = client.status().lastSyncedLsn;
    expect(checkpoint).toBe(1 + acked);

    const inFlight = 20;
    for (let i = 0; i < inFlight; i++) await client.mutate.cartAdd({ productId: 'p1', qty: 1 });
    const pendingAtKill = client.status().pending;
    killed = true;
    await a!.kill9();
    expect(pendingAtKill).toBeGreaterThan(0);

    await waitFor(
      'dora live on another node with nothing pending',
      () => client.status().state === 'live' && client.status().pending === 0,
      30_000,
    );
    expect([b!.url, c!.url]).toContain(client.status().server);
    // Resumed from its checkpoint by catch-up: no snapshot after the kill.
    expect(snapshotsAfterKill).toBe(0);

    const total = acked + inFlight;
    const stored = await storedDocs(schema, 'carts');
    expect(stored[ownedId('dora', 'cart')]).toMatchObject({ lines: [{ productId: 'p1', qty: total }] });
    expect(await localDocs(client, 'carts')).toEqual(stored);
    // Every mutation of dora's in the log once: seqs 1..total, each one change.
    const clientId = await clientIdOf(schema, 'dora');
    const rows = await sql<{ seq: string; n: string }>(
      `SELECT seq, count(*) AS n FROM ${schema}.changes WHERE client_id = $1 GROUP BY seq ORDER BY seq`,
      [clientId],
    );
    expect(rows.map((r) => [Number(r.seq), Number(r.n)])).toEqual(Array.from({ length: total }, (_, i) => [i + 1, 1]));
    await waitFor('dora at the head', async () => client.status().lastSyncedLsn === (await headOf(schema)), 10_000);
  }, 90_000);

  it('a push whose ack was lost, retried on another node, is a duplicate there and commits once', async () => {
    const schema = 'lost_ack';
    const [a, b] = await startPgNodes(2, { storeUrl: db.url, pgSchema: schema }, nodes);
    await adminMutate(a!.url, 'put', product('p1', 1000), 'seed-p1');
    const cartAdd = (seq: number): unknown => ({
      mutations: [{ seq, name: 'cartAdd', args: { productId: 'p1', qty: 1 } }],
    });
    const hello = (r: RawClient, userId: string, clientId: string): Promise<unknown> =>
      r.request('hello', {
        protocol: PROTOCOL_VERSION,
        clientId,
        token: tokenFor(userId),
        checkpoint: 0,
        checkpointTerm: 0,
        pendingFrom: 1,
      });
    const changesOf = async (clientId: string): Promise<Array<[number, number]>> =>
      (
        await sql<{ seq: string; n: string }>(
          `SELECT seq, count(*) AS n FROM ${schema}.changes WHERE client_id = $1 GROUP BY seq ORDER BY seq`,
          [clientId],
        )
      ).map((r) => [Number(r.seq), Number(r.n)]);
    const qtyOf = async (userId: string): Promise<number | undefined> => {
      const carts = await storedDocs(schema, 'carts');
      const cart = Object.values(carts).find((d) => d['owner'] === userId);
      return (cart?.['lines'] as Array<{ qty: number }> | undefined)?.[0]?.qty;
    };

    // The ack is never read: node a commits seq 1, the client leaves, and pushes seq 1 again on node b.
    const clientId = 'lost-ack-client-0001';
    const onA = await raw(a!.url);
    expect(await hello(onA, 'eve', clientId)).toMatchObject({ ok: true, lastSeq: 0 });
    onA.socket.emit('push', cartAdd(1), () => undefined);
    await waitFor('seq 1 committed', async () => (await changesOf(clientId)).length === 1, 10_000);
    onA.close();
    const onB = await raw(b!.url);
    expect(await hello(onB, 'eve', clientId)).toMatchObject({ ok: true, lastSeq: 1 });
    expect(await onB.request('push', cartAdd(1))).toEqual({ ok: true, results: [{ seq: 1, status: 'duplicate' }] });
    // The next seq is new on node b.
    expect(await onB.request('push', cartAdd(2))).toMatchObject({ ok: true, results: [{ seq: 2, status: 'applied' }] });
    expect(await changesOf(clientId)).toEqual([
      [1, 1],
      [2, 1],
    ]);
    expect(await qtyOf('eve')).toBe(2);
    onB.close();

    // The retry races the first attempt: the connection to node a drops right after the push is sent,
    // and the same push goes to node b at once. Whichever commits first, the other finds it done.
    const racers = 12;
    const results = await Promise.all(
      Array.from({ length: racers }, async (_, i) => {
        const id = `lost-ack-race-${String(i).padStart(4, '0')}`;
        const userId = `racer-${i}`;
        const first = await raw(a!.url);
        expect(await hello(first, userId, id)).toMatchObject({ ok: true });
        first.socket.emit('push', cartAdd(1), () => undefined);
        first.close();
        const second = await raw(b!.url);
        expect(await hello(second, userId, id)).toMatchObject({ ok: true });
        const ack = (await second.request('push', cartAdd(1))) as { ok: boolean; results: Array<{ status: string }> };
        second.close();
        return { id, userId, status: ack.results[0]?.status };
      }),
    );
    expect(results.every((r) => r.status === 'applied' || r.status === 'duplicate')).toBe(true);
    // Node a stopped: whatever it still had in flight has committed or never will.
    await a!.stop();
    for (const r of results) {
      expect(await changesOf(r.id)).toEqual([[1, 1]]);
      expect(await qtyOf(r.userId)).toBe(1);
    }
  }, 90_000);

  it('many writers on three nodes: readers on every node see every LSN of their scope once, in order, without gaps', async () => {
    const schema = 'lsn_order';
    const cluster = await startPgNodes(3, { storeUrl: db.url, pgSchema: schema }, nodes);
    interface Reader {
      name: string;
      node: number;
      client: RawClient;
      /** The LSN its stream starts after: 0, or a late joiner's snapshot `asOf`. */
      start: () => number;
    }
    const hello = async (r: RawClient, userId: string, i: number): Promise<void> => {
      const ack = await r.hello(tokenFor(userId), `${userId}-${String(i).padStart(6, '0')}`);
      expect(ack).toMatchObject({ ok: true });
    };
    const reader = async (node: number, name: string): Promise<Reader> => {
      const client = await raw(cluster[node]!.url);
      await hello(client, name, node);
      const start = (): number => {
        const snap = client.received.find((m) => m.event === 'snapshot' && (m.payload as { done: boolean }).done)
          ?.payload as { asOf: number } | undefined;
        return snap?.asOf ?? 0;
      };
      return { name, node, client, start };
    };
    // Two readers per node from the empty log.
    const readers: Reader[] = [];
    for (let n = 0; n < 3; n++) for (let k = 0; k < 2; k++) readers.push(await reader(n, `reader-${n}-${k}`));

    // Ten writers per node, each pushing small batches (two public notes and one owner-only item) back to back.
    const writerReaders = await Promise.all(Array.from({ length: 30 }, (_, i) => reader(i % 3, `writer-${i}`)));
    const writers = writerReaders.map((r) => r.client);
    // Live before the first push (a session's switch to live is a `changes` message, empty here), so a writer's
    // own changes come by the fan-out and its acks may be held to follow them.
    await waitFor(
      'every stream live',
      () => [...readers, ...writerReaders].every((r) => r.client.received.some((m) => m.event === 'changes')),
      20_000,
    );
    // Writers go on for at least 4 s and until 150 LSNs after the late joiners came (at most 40 s).
    const deadline = Date.now() + 4_000;
    const hardStop = Date.now() + 40_000;
    let lateDone = false;
    let pushes = 0;
    const ackedBeforeFanOut: string[] = [];
    const toOf = (payload: unknown): number => (payload as { to: number }).to;
    const writing = Promise.all(
      writers.map(async (w, i) => {
        const owner = `writer-${i}`;
        for (let seq = 1; (Date.now() < deadline || !lateDone) && Date.now() < hardStop; seq += 3) {
          const mutations = [0, 1, 2].map((k) => ({
            seq: seq + k,
            name: 'put',
            args:
              k < 2
                ? { collection: 'notes', doc: { id: `w${i}-${seq + k}`, text: 'x', createdAt: seq + k } }
                : { collection: 'items', doc: { id: ownedId(owner, `i${seq + k}`), owner, n: seq + k } },
          }));
          const ack = (await w.request('push', { mutations }, 20_000)) as {
            ok: boolean;
            results: Array<{ status: string; lsn?: number }>;
          };
          expect(ack.ok && ack.results.every((r) => r.status === 'applied')).toBe(true);
          pushes++;
          // The ack follows the fan-out on the same connection: the writer (live on public notes and its
          // own items) has had its own changes before it hears they are committed.
          const acked = Math.max(...ack.results.map((r) => r.lsn ?? 0));
          const had = Math.max(0, ...w.received.filter((m) => m.event === 'changes').map((m) => toOf(m.payload)));
          if (had < acked) ackedBeforeFanOut.push(`writer ${i}: ack of ${acked} when its stream was at ${had}`);
        }
      }),
    );
    // One late joiner per node, mid-stream: a snapshot, then the live stream from its asOf.
    await waitFor('the log past 150', async () => (await headOf(schema)) >= 150, 20_000);
    for (let n = 0; n < 3; n++) readers.push(await reader(n, `late-${n}`));
    const joinedAt = await headOf(schema);
    await waitFor('150 more LSNs', async () => (await headOf(schema)) >= joinedAt + 150, 20_000);
    lateDone = true;
    await writing;
    const head = await headOf(schema);
    expect(head).toBe(pushes * 3);

    const lastTo = (r: Reader): number => {
      const changes = r.client.received.filter((m) => m.event === 'changes');
      return (changes[changes.length - 1]?.payload as { to: number } | undefined)?.to ?? -1;
    };
    await waitFor(
      'every stream at the head',
      () => [...readers, ...writerReaders].every((r) => lastTo(r) === head),
      30_000,
    );

    expect(ackedBeforeFanOut).toEqual([]);
    // Each stream's scope as PostgreSQL holds it: the public notes, and a writer's own items.
    const log = await sql<{ lsn: string; collection: string; owner: string | null }>(
      `SELECT lsn, collection, owner FROM ${schema}.changes ORDER BY lsn`,
    );
    expect(log.map((r) => Number(r.lsn))).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    const scopeOf = (name: string, after: number): number[] =>
      log
        .filter((r) => r.collection === 'notes' || (r.collection === 'items' && r.owner === name))
        .map((r) => Number(r.lsn))
        .filter((l) => l > after);
    expect(scopeOf('nobody', 0)).toHaveLength((head / 3) * 2);
    for (const r of [...readers, ...writerReaders]) {
      const start = r.start();
      const what = `${r.name} on node ${r.node} from ${start}`;
      let at = start;
      const seen: number[] = [];
      for (const m of r.client.received.filter((e) => e.event === 'changes')) {
        const msg = m.payload as { from: number; to: number; changes: Array<{ lsn: number; collection: string }> };
        expect(msg.from, `${what}: a message from ${msg.from} after one up to ${at}`).toBe(at);
        for (const c of msg.changes) {
          expect(c.lsn, what).toBeGreaterThan(msg.from);
          expect(c.lsn, what).toBeLessThanOrEqual(msg.to);
          seen.push(c.lsn);
        }
        at = msg.to;
      }
      // Strictly rising (so none twice) and exactly its scope of the log after its start.
      expect(seen, what).toEqual(scopeOf(r.name, start));
    }
    expect(readers.filter((r) => r.start() > 0)).toHaveLength(3);
  }, 120_000);
});
