import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../shared/clock';
import { defineSchema } from '../../shared/schema/define-schema';
import type { Changes } from '../../shared/protocol/changes';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import type { PushAck } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { openPgStore } from '../store/pg-store';
import type { PgStore } from '../store/pg-store';
import { createTestDatabase } from '../store/pg-test-db';
import type { TestDatabase } from '../store/pg-test-db';
import type { Session, SessionSink } from './session';
import { SyncCore } from './sync-core';

/*
 * Two sync cores ("nodes") with `sharedLog` on one PostgreSQL store, as
 * `tideline serve --store postgres://…` runs them, minus the sockets: every
 * live session sees every LSN of its scope exactly once and in order,
 * whichever node committed it and however commits interleave; a session that
 * joins while both nodes commit switches from catch-up to live without a gap;
 * a push retried on the other node commits once.
 */

const schema = defineSchema({
  name: 'shared-log-test',
  version: 1,
  collections: {
    notes: { read: 'public', write: 'any', indexes: [] },
    secrets: { read: 'owner', write: 'owner', indexes: [] },
  },
  mutators: {},
});

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

/** What one session received, page and live message alike, in order. */
interface Reader {
  session: Session;
  got: Changes[];
}

async function node(store: PgStore) {
  const core = new SyncCore({
    store,
    schema,
    clock: systemClock,
    limits: DEFAULT_LIMITS,
    verifyToken: (token) => ({ userId: token, roles: [] }),
    schedule: (fn) => setImmediate(fn),
    sharedLog: true,
  });
  const unlisten = await store.onCommit(() => core.wake());
  await core.start();
  const join = async (userId: string, clientId: string, checkpoint = 0): Promise<Reader> => {
    const got: Changes[] = [];
    const sink: SessionSink = {
      sendChanges: (msg) => void got.push(msg),
      sendPage: (msg) => {
        got.push(msg);
        return Promise.resolve();
      },
      sendSnapshot: () => Promise.reject(new Error('no snapshot expected here')),
      close: (error) => void got.push({ from: -1, to: -1, changes: [], rejected: [{ seq: -1, error }] }),
    };
    const session = core.connect(sink);
    const ack = await core.hello(session, {
      protocol: PROTOCOL_VERSION,
      clientId,
      token: userId,
      checkpoint,
      checkpointTerm: checkpoint > 0 ? 1 : 0,
      pendingFrom: 1,
    });
    if (!ack.ok) throw new Error(ack.error.message);
    return { session, got };
  };
  return { core, join, close: () => (unlisten(), core.close()) };
}

/** The LSNs a reader was sent, checking that its messages chain (each `from` is the last `to`). */
function lsnsOf(r: Reader, checkpoint: number): { lsns: number[]; breaks: string[] } {
  const lsns: number[] = [];
  const breaks: string[] = [];
  let at = checkpoint;
  for (const m of r.got) {
    if (m.from !== at) breaks.push(`message ${m.from}→${m.to} after ${at}`);
    for (const c of m.changes) {
      if (c.lsn <= m.from || c.lsn > m.to) breaks.push(`LSN ${c.lsn} outside ${m.from}→${m.to}`);
      lsns.push(c.lsn);
    }
    at = m.to;
  }
  return { lsns, breaks };
}

const until = async (what: string, ok: () => boolean, ms = 20_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('SyncCore with sharedLog: two nodes on one PostgreSQL', () => {
  it('live sessions on both nodes see every LSN of their scope once, in order, while both nodes commit', async () => {
    const stores = [
      await openPgStore({ url: db.url, schema: 'shared_a' }),
      await openPgStore({ url: db.url, schema: 'shared_a' }),
    ];
    const nodes = [await node(stores[0]!), await node(stores[1]!)];
    try {
      // Readers on both nodes before the writes; one more joins on each while they run.
      const readers: Array<{ r: Reader; user: string; checkpoint: number }> = [];
      for (const [i, n] of nodes.entries()) {
        readers.push({ r: await n.join('reader', `reader-${i}-early`), user: 'reader', checkpoint: 0 });
        readers.push({ r: await n.join('w0', `w0-reader-${i}`), user: 'w0', checkpoint: 0 });
      }
      const writers = await Promise.all(
        Array.from({ length: 8 }, (_, w) => nodes[w % 2]!.join(`w${w}`, `writer-${w}`)),
      );
      // Every session live before the writes start: a session that says hello at checkpoint 0 once the log
      // is not empty gets a snapshot, which this test leaves out.
      await until('the sessions to go live', () =>
        [...readers.map((x) => x.r), ...writers].every((r) => r.session.live),
      );
      const pushes: Array<Promise<PushAck>> = [];
      const ROUNDS = 15;
      let joined = false;
      for (let round = 0; round < ROUNDS; round++) {
        const acks = writers.map((w, k) =>
          nodes[k % 2]!.core.push(w.session, {
            mutations: [
              { seq: 2 * round + 1, name: 'put', args: { collection: 'notes', doc: { id: `n-${k}-${round}` } } },
              {
                seq: 2 * round + 2,
                name: 'put',
                args: { collection: 'secrets', doc: { id: `w${k}/s-${round}`, owner: `w${k}` } },
              },
            ],
          }),
        );
        pushes.push(...acks);
        if (round === 5 && !joined) {
          joined = true;
          // From a checkpoint a few commits back (where the early reader is), catching up while commits go on.
          for (const [i, n] of nodes.entries()) {
            const checkpoint = Math.max(1, readers[2 * i]!.r.session.cursor - 10);
            readers.push({ r: await n.join('reader', `reader-${i}-late`, checkpoint), user: 'reader', checkpoint });
          }
        }
        await Promise.all(acks);
      }
      const results = await Promise.all(pushes);
      expect(results.every((a) => a.ok)).toBe(true);
      const head = (await stores[0]!.meta()).headLsn;
      expect(head).toBe(8 * ROUNDS * 2);
      const all = await stores[0]!.readLog(0, 100_000);
      const visible = (user: string, after: number) =>
        all.changes.filter((c) => c.lsn > after && (c.owner === null || c.owner === user)).map((c) => c.lsn);
      // A session is sent nothing for commits wholly out of its scope, so it is done when it has its scope.
      await until('every reader to receive its scope', () =>
        readers.every(
          ({ r, user, checkpoint }) => lsnsOf(r, checkpoint).lsns.length >= visible(user, checkpoint).length,
        ),
      );
      for (const { r, user, checkpoint } of readers) {
        const { lsns, breaks } = lsnsOf(r, checkpoint);
        expect(breaks).toEqual([]);
        expect(lsns).toEqual(visible(user, checkpoint));
      }
      // A writer is told its own outcomes: its last message of the run settles its last seq.
      for (const w of writers) expect(Math.max(...w.got.map((m) => m.lastSeq ?? 0))).toBe(2 * ROUNDS);
    } finally {
      for (const n of nodes) n.close();
      for (const s of stores) await s.close();
    }
  }, 60_000);

  it('a push retried on the other node answers duplicate and commits nothing new', async () => {
    const stores = [
      await openPgStore({ url: db.url, schema: 'shared_b' }),
      await openPgStore({ url: db.url, schema: 'shared_b' }),
    ];
    const nodes = [await node(stores[0]!), await node(stores[1]!)];
    try {
      const push = { mutations: [{ seq: 1, name: 'put', args: { collection: 'notes', doc: { id: 'once' } } }] };
      const onA = await nodes[0]!.join('u', 'client-retry');
      expect(await nodes[0]!.core.push(onA.session, push)).toMatchObject({
        ok: true,
        results: [{ status: 'applied' }],
      });
      // The ack was lost with node A's connection: the client says hello to B and sends the same push.
      nodes[0]!.core.disconnect(onA.session);
      const onB = await nodes[1]!.join('u', 'client-retry');
      expect(await nodes[1]!.core.push(onB.session, push)).toMatchObject({
        ok: true,
        results: [{ seq: 1, status: 'duplicate' }],
      });
      expect((await stores[1]!.meta()).headLsn).toBe(1);
    } finally {
      for (const n of nodes) n.close();
      for (const s of stores) await s.close();
    }
  }, 30_000);
});
