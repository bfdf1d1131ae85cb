import { describe, expect, it } from 'vitest';
import { storeSchema } from '../../shared/apps/store';
import type { Change } from '../../shared/protocol/change';
import type { Changes } from '../../shared/protocol/changes';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { ownedId } from '../../shared/schema/owned-id';
import { MemoryStore } from '../store/memory-store';
import { FanoutView, inScope } from './fanout-view';
import type { ChangesChannel, Session, SessionSink } from './session';
import { SyncCore } from './sync-core';

/**
 * The grouped fan-out: sessions that get the same bytes share one message,
 * handed once to their channel; every session still gets exactly what the
 * per-session rule gives (its scope, origins only on its own changes, its
 * own outcomes).
 */

interface Receiver {
  session: Session;
  userId: string;
  clientId: string;
  allOf: readonly string[];
  got: Changes[];
}

function setup() {
  const store = new MemoryStore();
  let scheduled: Array<() => void> = [];
  const core = new SyncCore({
    store,
    schema: storeSchema,
    clock: { now: () => 1_700_000_000_000, setTimeout: () => undefined, clearTimeout: () => undefined },
    limits: DEFAULT_LIMITS,
    schedule: (fn) => void scheduled.push(fn),
  });
  const runAll = async (): Promise<void> => {
    while (scheduled.length > 0) {
      const now = scheduled;
      scheduled = [];
      for (const fn of now) fn();
      await new Promise((r) => setImmediate(r));
    }
  };
  const groupCalls: Array<{ sinks: readonly SessionSink[]; msg: Changes }> = [];
  const received = new Map<SessionSink, Changes[]>();
  const channel: ChangesChannel = {
    sendToMany(sinks, msg) {
      groupCalls.push({ sinks, msg });
      for (const s of sinks) received.get(s)!.push(msg);
    },
  };
  const receivers: Receiver[] = [];
  const join = async (userId: string, id: string, roles: string[] = []): Promise<Receiver> => {
    const got: Changes[] = [];
    const sink: SessionSink = {
      channel,
      sendChanges: (msg) => void got.push(msg),
      sendPage: async () => undefined,
      sendSnapshot: async () => undefined,
      close: () => undefined,
    };
    received.set(sink, got);
    const session = core.connect(sink);
    const clientId = `client-${id}`;
    const checked = core.checkHello(session, {
      protocol: PROTOCOL_VERSION,
      clientId,
      token: 'verified elsewhere',
      checkpoint: 0,
      checkpointTerm: 0,
      pendingFrom: 1,
    });
    if (!checked.ok) throw new Error(checked.error.message);
    const ack = await core.admit(session, checked.hello, { userId, roles });
    if (!ack.ok) throw new Error(ack.error.message);
    const r: Receiver = { session, userId, clientId, allOf: session.auth!.allOf, got };
    receivers.push(r);
    return r;
  };
  return { core, store, runAll, join, receivers, groupCalls };
}

const put = (seq: number, collection: string, doc: Record<string, unknown>) => ({
  seq,
  name: 'put',
  args: { collection, doc },
});

/** What one session is owed for `changes` by the per-session rule (scope, then origin only on its own). */
function expected(r: Receiver, changes: readonly Change[]): Change[] {
  return changes
    .filter((c) => inScope(c, r.userId, r.allOf))
    .map((c) => (c.clientId === r.clientId || c.clientId === null ? c : { ...c, clientId: null, seq: null }));
}

describe('grouped fan-out', () => {
  it('sends each session exactly its scope, sharing one message among sessions that get the same bytes', async () => {
    const { core, store, runAll, join, receivers, groupCalls } = setup();
    const alice = await join('alice', 'alice-1');
    const alice2 = await join('alice', 'alice-2');
    const bobs = [await join('bob', 'bob-1'), await join('bob', 'bob-2'), await join('carol', 'carol-1')];
    const staff = [await join('sam', 'sam-1', ['staff']), await join('sue', 'sue-1', ['staff'])];
    const writer = await join('writer', 'writer-1');
    await runAll();
    for (const r of receivers) r.got.length = 0;
    groupCalls.length = 0;

    // One commit: a public note and a private item of the writer, a private item of alice.
    const acks = [
      core.push(writer.session, {
        mutations: [
          put(1, 'notes', { id: 'n1', text: 'hello', createdAt: 1 }),
          put(2, 'items', { id: ownedId('writer', 'i1'), owner: 'writer', n: 1 }),
        ],
      }),
      core.push(alice.session, { mutations: [put(1, 'items', { id: ownedId('alice', 'i1'), owner: 'alice', n: 2 })] }),
    ];
    await runAll();
    for (const ack of await Promise.all(acks)) {
      expect(ack.ok && ack.results.every((r) => r.status === 'applied'), JSON.stringify(ack)).toBe(true);
    }
    const changes = store.readChanges(0, 100);
    expect(changes).toHaveLength(3);

    // Every session got one message, and it is what the per-session rule gives.
    for (const r of receivers) {
      expect(r.got, r.clientId).toHaveLength(1);
      expect(r.got[0]!.changes, r.clientId).toEqual(expected(r, changes));
      expect(r.got[0]!.to).toBe(3);
    }
    // No private document outside its owner's sessions, no origin outside the origin's session.
    for (const r of receivers) {
      for (const c of r.got[0]!.changes) {
        expect(c.owner === null || c.owner === r.userId, `${r.clientId} got ${c.id}`).toBe(true);
        if (c.clientId !== null) expect(c.clientId).toBe(r.clientId);
      }
    }
    // The pushers get their outcomes (a message of their own); the others none.
    expect(writer.got[0]!.lastSeq).toBe(2);
    expect(alice.got[0]!.lastSeq).toBe(1);
    expect(alice2.got[0]!.lastSeq).toBeUndefined();
    // bob, bob's second session, carol and the two staff members (whose roles read orders in full, but this
    // commit has none) see the same bytes: one message object, one channel call.
    const shared = groupCalls.find((g) => g.sinks.includes(bobs[0]!.session.sink));
    expect(shared?.sinks).toEqual([...bobs, ...staff].map((b) => b.session.sink));
    expect(new Set([...bobs, ...staff].map((b) => b.got[0]))).toEqual(new Set([shared!.msg]));
    expect(shared!.msg.changes.map((c) => c.id)).toEqual(['n1']);
    expect(groupCalls).toHaveLength(1);
    // alice's other session sees her item (without its origin): not the public group's bytes.
    expect(alice2.got[0]!.changes.map((c) => [c.id, c.clientId])).toEqual([
      ['n1', null],
      [ownedId('alice', 'i1'), null],
    ]);
    expect(groupCalls.some((g) => g.sinks.includes(alice2.session.sink))).toBe(false);
  });

  it('a session whose cursor differs (it skipped a commit out of its scope) gets its own from', async () => {
    const { core, runAll, join, receivers } = setup();
    const alice = await join('alice', 'alice-1');
    const bob = await join('bob', 'bob-1');
    const writer = await join('writer', 'writer-1');
    await runAll();
    for (const r of receivers) r.got.length = 0;
    // Only alice's: bob is sent nothing and keeps his cursor.
    const first = core.push(alice.session, {
      mutations: [put(1, 'items', { id: ownedId('alice', 'i1'), owner: 'alice', n: 1 })],
    });
    await runAll();
    const firstAck = await first;
    expect(firstAck.ok && firstAck.results.every((r) => r.status === 'applied')).toBe(true);
    expect(bob.got).toHaveLength(0);
    const second = core.push(writer.session, { mutations: [put(1, 'notes', { id: 'n1', text: 'x', createdAt: 1 })] });
    await runAll();
    expect((await second).ok).toBe(true);
    expect(bob.got.map((m) => [m.from, m.to])).toEqual([[0, 2]]);
    expect(alice.got.map((m) => [m.from, m.to])).toEqual([
      [0, 1],
      [1, 2],
    ]);
  });
});

describe('FanoutView', () => {
  const change = (lsn: number, owner: string | null, collection = 'items', clientId: string | null = null): Change => ({
    lsn,
    term: 1,
    collection,
    id: `d${lsn}`,
    doc: { id: `d${lsn}` },
    owner,
    clientId,
    seq: clientId === null ? null : lsn,
    ts: 0,
  });

  it('gives users who own none of the changes one shared list, and owners their own', () => {
    const view = new FanoutView([
      change(1, null, 'notes', 'c-w'),
      change(2, 'alice', 'items', 'c-a'),
      change(3, 'x', 'orders'),
    ]);
    const bob = view.visibleTo('bob', []);
    const carol = view.visibleTo('carol', []);
    expect(carol).toBe(bob);
    expect(bob.changes.map((c) => [c.id, c.clientId])).toEqual([['d1', null]]);
    const alice = view.visibleTo('alice', []);
    expect(alice.key).not.toBe(bob.key);
    expect(alice.changes.map((c) => c.id)).toEqual(['d1', 'd2']);
    expect(view.visibleTo('sam', ['orders']).changes.map((c) => c.id)).toEqual(['d1', 'd3']);
    // Another full-read scope that sees nothing more here shares the public list.
    expect(view.visibleTo('sue', ['carts'])).toBe(bob);
    expect(view.visibleWithOrigin('alice', 'c-a', []).map((c) => [c.id, c.clientId])).toEqual([
      ['d1', null],
      ['d2', 'c-a'],
    ]);
    // Lists of one length but other changes never share.
    const two = new FanoutView([change(1, null), change(2, 'alice'), change(3, 'bob')]);
    expect(two.visibleTo('alice', []).changes.map((c) => c.id)).toEqual(['d1', 'd2']);
    expect(two.visibleTo('bob', []).changes.map((c) => c.id)).toEqual(['d1', 'd3']);
    expect(two.visibleTo('bob', []).key).not.toBe(two.visibleTo('alice', []).key);
    expect(view.madeAny('c-a')).toBe(true);
    expect(view.madeAny('c-b')).toBe(false);
  });
});
