import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TidelineError } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import { defineMutator } from '../../shared/mutators/types';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import { defineSchema } from '../../shared/schema/define-schema';
import { MemoryLocalStore } from '../store/memory-local-store';
import { applyLocal } from './apply-local';
import type { LocalRunDeps } from './apply-local';
import type { LocalTx, OutboxEntry } from './local-store';

const ids = z.object({ ids: z.array(z.string()) });

/** Reads every document it bumps, and refuses a missing one: the common "update these" shape. */
const bumpAll = defineMutator({
  name: 'bumpAll',
  args: ids,
  run(tx, { ids }) {
    for (const id of ids) {
      const doc = tx.get('items', id);
      if (!doc) throw new TidelineError('NOT_FOUND', `items/${id} does not exist`);
      tx.put('items', { ...doc, n: Number(doc['n']) + 1 });
    }
  },
});

/** Writes without reading: only the run's own check of what it overwrites reads. */
const createAll = defineMutator({
  name: 'createAll',
  args: ids,
  run(tx, { ids }) {
    for (const id of ids) tx.put('items', { id, n: 0 });
  },
});

/** Follows `next` links from `start`: each read's id comes from the previous document. */
const walk = defineMutator({
  name: 'walk',
  args: z.object({ start: z.string() }),
  run(tx, { start }) {
    const seen: string[] = [];
    for (let doc = tx.get('items', start); doc; doc = tx.get('items', doc['next'] as string)) seen.push(doc.id);
    tx.put('items', { id: 'path', n: 0, seen });
  },
});

/** Takes the first free slot: guessing that documents exist would make this loop endless. */
const firstFree = defineMutator({
  name: 'firstFree',
  args: z.object({}),
  run(tx) {
    let i = 0;
    while (tx.get('items', `slot${i}`)) i++;
    tx.put('items', { id: `slot${i}`, n: 0 });
  },
});

/** Refuses an id that is taken: guessing that documents are absent would be wrong here. */
const create = defineMutator({
  name: 'create',
  args: z.object({ id: z.string() }),
  run(tx, { id }) {
    if (tx.get('items', id)) throw new TidelineError('REJECTED', `items/${id} exists`);
    tx.put('items', { id, n: 0 });
  },
});

let calls = 0;
/** Reads a new id on every run, as a mutator that is not deterministic does. */
const unstable = defineMutator({
  name: 'unstable',
  args: z.object({}),
  run(tx) {
    tx.get('items', `r${calls++}`);
  },
});

const schema = defineSchema({
  name: 'apply-local-test',
  version: 1,
  collections: { items: { read: 'public', write: 'any', indexes: [] } },
  mutators: { bumpAll, createAll, walk, firstFree, create, unstable },
});

const deps: LocalRunDeps = {
  schema,
  ctx: { userId: 'u1', roles: [], side: 'client' },
  limits: DEFAULT_LIMITS,
};

/** Counts the calls of each `LocalTx` method, and the documents the reads asked for. */
function counted(tx: LocalTx, counts: Map<string, number>): LocalTx {
  return new Proxy(tx, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return (...args: unknown[]): unknown => {
        counts.set(prop, (counts.get(prop) ?? 0) + 1);
        if (prop === 'getDocs') counts.set('docsRead', (counts.get('docsRead') ?? 0) + (args[0] as unknown[]).length);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

async function seeded(docs: readonly Doc[]): Promise<MemoryLocalStore> {
  const store = new MemoryLocalStore(schema, () => 'c1');
  await store.transaction((tx) => tx.applyDocs(docs.map((doc) => ({ collection: 'items', id: doc.id, doc }))));
  return store;
}

async function apply(
  store: MemoryLocalStore,
  name: string,
  args: OutboxEntry['args'],
  runDeps: LocalRunDeps = deps,
): Promise<{ outcome: Awaited<ReturnType<typeof applyLocal>>; entry: OutboxEntry; counts: Map<string, number> }> {
  const counts = new Map<string, number>();
  const entry: OutboxEntry = { seq: 1, name, args, reads: [], writes: [] };
  const outcome = await store.transaction((tx) => applyLocal(counted(tx, counts), runDeps, entry));
  return { outcome, entry, counts };
}

const range = (n: number, prefix = 'i'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const reads = (counts: Map<string, number>): number => (counts.get('getDoc') ?? 0) + (counts.get('getDocs') ?? 0);

describe('applyLocal prefetch', () => {
  it('runs a 1,000-document mutator with O(1) bulk reads and writes, not one per document', async () => {
    const all = range(1000);
    const store = await seeded(all.map((id) => ({ id, n: 1 })));
    const { outcome, entry, counts } = await apply(store, 'bumpAll', { ids: all });
    expect(outcome.ok).toBe(true);
    // One round finds every document, one run confirms: a per-miss rerun would read 1,000 times.
    expect(reads(counts)).toBeLessThanOrEqual(2);
    expect(counts.get('docsRead')).toBe(1000);
    const total = [...counts].filter(([m]) => m !== 'docsRead').reduce((s, [, n]) => s + n, 0);
    expect(total).toBeLessThanOrEqual(6);
    expect(entry.reads).toHaveLength(1000);
    expect(entry.writes).toEqual(all.map((id) => `items/${id}`));
    const after = await store.transaction(async (tx) => ({
      docs: await tx.getDocs(all.map((id) => ({ collection: 'items', id }))),
      shadow: await tx.shadow(),
    }));
    expect(after.docs.every((d) => d?.['n'] === 2)).toBe(true);
    expect(after.shadow).toHaveLength(1000);
    expect(after.shadow.every((s) => s.doc?.['n'] === 1)).toBe(true);
  });

  it('creates 1,000 documents it never reads with O(1) reads, shadowing each as absent', async () => {
    const store = await seeded([]);
    const { outcome, counts } = await apply(store, 'createAll', { ids: range(1000) });
    expect(outcome.ok).toBe(true);
    expect(reads(counts)).toBeLessThanOrEqual(2);
    const shadow = await store.transaction((tx) => tx.shadow());
    expect(shadow).toHaveLength(1000);
    expect(shadow.every((s) => s.doc === null)).toBe(true);
  });

  it('runs a 20,000-document mutation, past the old rerun cap, in a few rounds', async () => {
    const all = range(20_000);
    const store = await seeded(all.map((id) => ({ id, n: 1 })));
    const { outcome, counts } = await apply(store, 'bumpAll', { ids: all });
    expect(outcome.ok).toBe(true);
    // The miss cap doubles per round: log2(20,000 / 4,096) rounds and a little.
    expect(reads(counts)).toBeLessThanOrEqual(8);
    expect(counts.get('docsRead')).toBe(20_000);
    const docs = await store.transaction((tx) => tx.getDocs(all.map((id) => ({ collection: 'items', id }))));
    expect(docs.every((d) => d?.['n'] === 2)).toBe(true);
  });

  it('follows a read chain, one round per link, to the right result', async () => {
    const chain = range(6, 'c');
    const store = await seeded(chain.map((id, i) => ({ id, n: 0, next: chain[i + 1] ?? 'end' })));
    const { outcome, entry, counts } = await apply(store, 'walk', { start: 'c0' });
    expect(outcome.ok).toBe(true);
    expect(reads(counts)).toBe(7);
    const path = await store.transaction((tx) => tx.getDoc('items', 'path'));
    expect(path?.['seen']).toEqual(chain);
    expect(entry.reads).toEqual([...chain.map((id) => `items/${id}`), 'items/end', 'items/path']);
  });

  it('ends a loop that only guesses make endless, with the right result', async () => {
    const store = await seeded(range(10, 'slot').map((id) => ({ id, n: 1 })));
    const { outcome } = await apply(store, 'firstFree', {});
    expect(outcome.ok).toBe(true);
    expect(await store.transaction((tx) => tx.getDoc('items', 'slot10'))).toEqual({ id: 'slot10', n: 0 });
  });

  it('refuses to create over a taken id, and creates a free one', async () => {
    const store = await seeded([{ id: 'a', n: 5 }]);
    const taken = await apply(store, 'create', { id: 'a' });
    expect(taken.outcome).toMatchObject({ ok: false, error: { code: 'REJECTED' } });
    expect(taken.entry.writes).toEqual([]);
    const free = await apply(store, 'create', { id: 'b' });
    expect(free.outcome.ok).toBe(true);
    const after = await store.transaction(async (tx) => ({
      a: await tx.getDoc('items', 'a'),
      shadow: await tx.shadow(),
    }));
    expect(after.a).toEqual({ id: 'a', n: 5 });
    expect(after.shadow).toEqual([{ key: 'items/b', collection: 'items', id: 'b', doc: null }]);
  });

  it('reports a missing document as the mutator does', async () => {
    const store = await seeded([{ id: 'a', n: 1 }]);
    const { outcome } = await apply(store, 'bumpAll', { ids: ['a', 'nope'] });
    expect(outcome).toMatchObject({ ok: false, error: { code: 'NOT_FOUND', message: 'items/nope does not exist' } });
    expect(await store.transaction((tx) => tx.shadow())).toEqual([]);
  });

  it('keeps the first confirmed version in the shadow when a later pending mutation overwrites again', async () => {
    const store = await seeded([{ id: 'a', n: 1 }]);
    await apply(store, 'bumpAll', { ids: ['a'] });
    await apply(store, 'bumpAll', { ids: ['a'] });
    const after = await store.transaction(async (tx) => ({
      a: await tx.getDoc('items', 'a'),
      shadow: await tx.shadow(),
    }));
    expect(after.a).toEqual({ id: 'a', n: 3 });
    expect(after.shadow).toEqual([{ key: 'items/a', collection: 'items', id: 'a', doc: { id: 'a', n: 1 } }]);
  });

  it('stops a mutator that keeps reading new documents with TOO_LARGE, writing nothing', async () => {
    const store = await seeded([]);
    const rounds = await apply(store, 'unstable', {}, { ...deps, maxReadRounds: 50 });
    expect(rounds.outcome).toMatchObject({ ok: false, error: { code: 'TOO_LARGE', retryable: false } });
    if (!rounds.outcome.ok) expect(rounds.outcome.error.message).toContain('after 50 rounds');
    expect(reads(rounds.counts)).toBe(49);
    const docs = await apply(store, 'unstable', {}, { ...deps, maxReadDocs: 10 });
    expect(docs.outcome).toMatchObject({ ok: false, error: { code: 'TOO_LARGE' } });
    if (!docs.outcome.ok) expect(docs.outcome.error.message).toContain('more than 10 documents');
    expect(await store.transaction((tx) => tx.shadow())).toEqual([]);
  });
});
