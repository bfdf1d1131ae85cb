import { describe, expect, it } from 'vitest';
import type { Doc } from '../../shared/json';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import type { Change } from '../../shared/protocol/change';
import { defineSchema } from '../../shared/schema/define-schema';
import { MemoryLocalStore } from '../store/memory-local-store';
import type { LocalRunDeps } from './apply-local';
import { integrateConfirmed } from './integrate';
import type { LocalTx } from './local-store';

const schema = defineSchema({
  name: 'integrate-test',
  version: 1,
  collections: { notes: { read: 'public', write: 'any', indexes: [] } },
  mutators: {},
});
const deps: LocalRunDeps = { schema, ctx: { userId: 'u1', roles: [], side: 'client' }, limits: DEFAULT_LIMITS };

const change = (lsn: number, id: string, doc: Doc | null, seq: number | null): Change => ({
  lsn,
  term: 1,
  collection: 'notes',
  id,
  doc,
  owner: null,
  clientId: seq === null ? 'other' : 'me',
  seq,
  ts: 0,
});

/** The documents each applyDocs call of `tx` wrote, by id. */
function recording(tx: LocalTx, written: string[]): LocalTx {
  return {
    ...tx,
    applyDocs: async (writes) => {
      written.push(...writes.map((w) => w.id));
      return tx.applyDocs(writes);
    },
  };
}

describe('integrateConfirmed', () => {
  it('does not rewrite a settled write that comes back as it is shown; rewrites one that differs and others’ changes', async () => {
    const store = new MemoryLocalStore(schema, () => 'me');
    // Two local puts, pending: a and b are shown, both shadowed (absent before), seqs 1 and 2.
    await store.transaction(async (tx) => {
      await tx.applyDocs([
        { collection: 'notes', id: 'a', doc: { id: 'a', text: 'x', n: 1 } },
        { collection: 'notes', id: 'b', doc: { id: 'b', text: 'y' } },
      ]);
      await tx.bulkPutShadow([
        { key: 'notes/a', collection: 'notes', id: 'a', doc: null },
        { key: 'notes/b', collection: 'notes', id: 'b', doc: null },
      ]);
      await tx.bulkPutOutbox([
        { seq: 1, name: 'put', args: {}, reads: ['notes/a'], writes: ['notes/a'] },
        { seq: 2, name: 'put', args: {}, reads: ['notes/b'], writes: ['notes/b'] },
      ]);
    });
    const written: string[] = [];
    const result = await store.transaction((tx) =>
      integrateConfirmed(
        recording(tx, written),
        deps,
        [
          // a as shown (keys in another order), b as the server made it, c from another client.
          change(1, 'a', { n: 1, text: 'x', id: 'a' }, 1),
          change(2, 'b', { id: 'b', text: 'y', by: 'server' }, 2),
          change(3, 'c', { id: 'c' }, null),
        ],
        2,
        [],
        0,
      ),
    );
    expect(written.sort()).toEqual(['b', 'c']);
    expect(result.settled.map((e) => e.seq)).toEqual([1, 2]);
    expect(result.changed.sort()).toEqual(['notes/a', 'notes/b', 'notes/c']);
    const docs = await store.transaction((tx) =>
      tx.getDocs(['a', 'b', 'c'].map((id) => ({ collection: 'notes', id }))),
    );
    expect(docs).toEqual([{ id: 'a', text: 'x', n: 1 }, { id: 'b', text: 'y', by: 'server' }, { id: 'c' }]);
    expect(await store.transaction((tx) => tx.shadow())).toEqual([]);
    expect(await store.transaction((tx) => tx.outbox())).toEqual([]);
  });

  it('restores a rejected write from the shadow (the confirmed absence) though nothing comes back for it', async () => {
    const store = new MemoryLocalStore(schema, () => 'me');
    await store.transaction(async (tx) => {
      await tx.applyDocs([{ collection: 'notes', id: 'a', doc: { id: 'a' } }]);
      await tx.bulkPutShadow([{ key: 'notes/a', collection: 'notes', id: 'a', doc: null }]);
      await tx.bulkPutOutbox([{ seq: 1, name: 'put', args: {}, reads: ['notes/a'], writes: ['notes/a'] }]);
    });
    const error = { code: 'FORBIDDEN' as const, message: 'no', retryable: false };
    await store.transaction((tx) => integrateConfirmed(tx, deps, [], 1, [{ seq: 1, error }], 0));
    expect(await store.transaction((tx) => tx.getDoc('notes', 'a'))).toBeUndefined();
  });
});
