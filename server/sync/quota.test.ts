import { describe, expect, it } from 'vitest';
import { systemClock } from '../../shared/clock';
import { jsonByteLength } from '../../shared/json';
import type { JsonValue } from '../../shared/json';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import type { MutationResult } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { defineSchema } from '../../shared/schema/define-schema';
import { MemoryStore } from '../store/memory-store';
import { SYSTEM } from './server-write';
import type { SessionSink } from './session';
import { SyncCore } from './sync-core';

const schema = defineSchema({
  name: 'quota-test',
  version: 1,
  collections: {
    notes: { read: 'public', write: 'any', indexes: [], quota: { docs: 2, bytes: 120 } },
    drafts: { read: 'owner', write: 'owner', indexes: [], quota: { docs: 1 } },
    free: { read: 'public', write: 'any', indexes: [] },
  },
  mutators: {},
});

function setup() {
  const store = new MemoryStore();
  const core = new SyncCore({
    store,
    schema,
    clock: systemClock,
    limits: DEFAULT_LIMITS,
    verifyToken: (token) => ({ userId: token, roles: [] }),
    schedule: (fn) => setImmediate(fn),
  });
  const sink: SessionSink = {
    sendChanges: () => undefined,
    sendPage: async () => undefined,
    sendSnapshot: async () => undefined,
    close: () => undefined,
  };
  /** A connected client of `user`; `push` sends mutations with the next seqs and returns their results. */
  const client = async (user: string, clientId: string) => {
    const session = core.connect(sink);
    const ack = await core.hello(session, {
      protocol: PROTOCOL_VERSION,
      clientId,
      token: user,
      checkpoint: 0,
      checkpointTerm: 0,
      pendingFrom: 1,
    });
    if (!ack.ok) throw new Error(ack.error.message);
    let seq = 0;
    return async (...mutations: Array<[string, JsonValue]>): Promise<MutationResult[]> => {
      const res = await core.push(session, {
        mutations: mutations.map(([name, args]) => ({ seq: ++seq, name, args })),
      });
      if (!res.ok) throw new Error(res.error.message);
      return res.results;
    };
  };
  const usage = (collection: string, user: string) => store.transact((tx) => tx.usage(collection, user));
  return { core, store, client, usage };
}

const note = (id: string, text = '') => ['put', { collection: 'notes', doc: { id, text } }] as [string, JsonValue];
const statusOf = (results: MutationResult[]) =>
  results.map((r) => (r.status === 'rejected' ? `rejected ${r.error.code}` : r.status));

describe('quotas on the primary', () => {
  it('refuses the document past the count with QUOTA_EXCEEDED, storing nothing; a delete frees room', async () => {
    const { store, client, usage } = setup();
    const alice = await client('alice', 'alice-client-1');
    const results = await alice(note('a1'), note('a2'), note('a3'));
    expect(statusOf(results)).toEqual(['applied', 'applied', 'rejected QUOTA_EXCEEDED']);
    expect(results[2]).toMatchObject({
      error: { code: 'QUOTA_EXCEEDED', message: 'notes: 2 documents per user (you have 2)', retryable: false },
    });
    expect(store.getDoc('notes', 'a3')).toBeUndefined();
    expect(usage('notes', 'alice').docs).toBe(2);
    // Overwriting one's own document adds no document; another collection has its own room.
    expect(statusOf(await alice(note('a1', 'edited'), ['put', { collection: 'free', doc: { id: 'f' } }]))).toEqual([
      'applied',
      'applied',
    ]);
    expect(statusOf(await alice(['delete', { collection: 'notes', id: 'a2' }], note('a3')))).toEqual([
      'applied',
      'applied',
    ]);
    expect(store.getDoc('notes', 'a3')?.doc).toEqual({ id: 'a3', text: '' });
  });

  it('counts bytes: a write that grows the total past the quota is refused, one that shrinks it passes', async () => {
    const { store, client, usage } = setup();
    const alice = await client('alice', 'alice-client-1');
    const big = 'x'.repeat(60);
    expect(statusOf(await alice(note('a1', big)))).toEqual(['applied']);
    const [grown] = await alice(note('a1', big + big));
    expect(grown).toMatchObject({ status: 'rejected', error: { code: 'QUOTA_EXCEEDED' } });
    expect(grown?.status === 'rejected' ? grown.error.message : '').toMatch(
      /^notes: 120 bytes per user \(you have \d+; this mutation adds \d+\)$/,
    );
    expect(store.getDoc('notes', 'a1')?.doc).toEqual({ id: 'a1', text: big });
    expect(statusOf(await alice(note('a1', 'short')))).toEqual(['applied']);
    expect(usage('notes', 'alice')).toEqual({ docs: 1, bytes: jsonByteLength({ id: 'a1', text: 'short' }) });
  });

  it("leaves other users alone, and charges an edit to the document's author, not the editor", async () => {
    const { client, usage } = setup();
    const alice = await client('alice', 'alice-client-1');
    const bob = await client('bob', 'bob-client-1');
    await alice(note('a1'), note('a2'));
    expect(statusOf(await alice(note('a3')))).toEqual(['rejected QUOTA_EXCEEDED']);
    expect(statusOf(await bob(note('b1'), note('a1', 'x'.repeat(100))))).toEqual(['applied', 'applied']);
    expect(usage('notes', 'bob')).toEqual({ docs: 1, bytes: jsonByteLength({ id: 'b1', text: '' }) });
    // alice is now over her byte quota through bob's edit: she may still shrink and delete.
    expect(usage('notes', 'alice').bytes).toBeGreaterThan(120);
    expect(statusOf(await alice(note('a1', 'y'), ['delete', { collection: 'notes', id: 'a2' }]))).toEqual([
      'applied',
      'applied',
    ]);
  });

  it("counts an owner-only collection's documents against their owner", async () => {
    const { client } = setup();
    const alice = await client('alice', 'alice-client-1');
    const draft = (id: string) => ['put', { collection: 'drafts', doc: { id } }] as [string, JsonValue];
    expect(statusOf(await alice(draft('alice/1'), draft('alice/2')))).toEqual(['applied', 'rejected QUOTA_EXCEEDED']);
  });

  it("checks a user's server writes as their client's, and never the system's", async () => {
    const { core, client, usage } = setup();
    const alice = await client('alice', 'alice-client-1');
    await alice(note('a1'));
    const asAlice = { userId: 'alice', roles: [] };
    expect(await core.submit(asAlice, 'put', { collection: 'notes', doc: { id: 'a2', text: '' } })).toMatchObject({
      status: 'applied',
    });
    expect(usage('notes', 'alice').docs).toBe(2);
    expect(await core.submit(asAlice, 'put', { collection: 'notes', doc: { id: 'a3', text: '' } })).toMatchObject({
      status: 'rejected',
      error: { code: 'QUOTA_EXCEEDED' },
    });
    expect(await core.submit(SYSTEM, 'put', { collection: 'notes', doc: { id: 's1', text: '' } })).toMatchObject({
      status: 'applied',
    });
  });
});
