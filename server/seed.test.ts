import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Doc } from '../shared/json';
import { defineSchema } from '../shared/schema/define-schema';
import { removeDir, tempDataDir } from '../test/support/server-process';
import { seedEmptyStore } from './seed';
import { openSqliteStore } from './store/sqlite-store';
import type { SqliteStore } from './store/sqlite-store';

const schema = defineSchema({
  name: 'app',
  version: 1,
  collections: {
    todos: {
      read: 'public',
      write: 'any',
      indexes: [],
      doc: z.object({ id: z.string(), title: z.string().min(1) }).passthrough() as unknown as z.ZodType<Doc>,
    },
    drafts: { read: 'owner', write: 'owner', indexes: [] },
  },
  mutators: {},
});

describe('seedEmptyStore', () => {
  let dir = '';
  let store: SqliteStore | null = null;
  const open = (): SqliteStore => {
    dir = tempDataDir('tideline-seed-');
    store = openSqliteStore(join(dir, 'store.db'));
    return store;
  };
  afterEach(() => {
    store?.close();
    store = null;
    removeDir(dir);
  });

  it('writes the seed into an empty store only, the function form getting the time', () => {
    const s = open();
    const seed = (now: number) => [{ collection: 'todos', doc: { id: 'a', title: `at ${now}` } }];
    expect(seedEmptyStore(s, schema, seed, 7)).toBe(1);
    expect(s.getDoc('todos', 'a')?.doc).toEqual({ id: 'a', title: 'at 7' });
    expect(seedEmptyStore(s, schema, [{ collection: 'todos', doc: { id: 'b', title: 'b' } }], 8)).toBe(0);
    expect(s.getDoc('todos', 'b')).toBeUndefined();
  });

  it('refuses a seed outside the schema, writing nothing', () => {
    const s = open();
    const planted = [
      { collection: 'todos', doc: { id: 'a', title: 'fine' } },
      { collection: 'products', doc: { id: 'p1' } },
    ];
    expect(() => seedEmptyStore(s, schema, planted, 1)).toThrow(
      "seed document products/p1: no collection 'products' in schema 'app'",
    );
    expect(() => seedEmptyStore(s, schema, [{ collection: 'todos', doc: { id: 'x', title: '' } }], 1)).toThrow(
      "seed document todos/x does not match its collection's schema",
    );
    expect(s.meta().headLsn).toBe(0);
  });

  it("refuses an owner-only seed document without an owner or outside its owner's id namespace", () => {
    const s = open();
    expect(() => seedEmptyStore(s, schema, [{ collection: 'drafts', doc: { id: 'ann/d1' } }], 1)).toThrow(
      "'drafts' is owner-only, so the seed must name its owner",
    );
    expect(() =>
      seedEmptyStore(s, schema, [{ collection: 'drafts', doc: { id: 'bob/d1', owner: 'ann' }, owner: 'ann' }], 1),
    ).toThrow("its id must start with its owner's prefix 'ann/'");
    expect(s.meta().headLsn).toBe(0);
    const ok = [{ collection: 'drafts', doc: { id: 'ann/d1', owner: 'ann' }, owner: 'ann' }];
    expect(seedEmptyStore(s, schema, ok, 1)).toBe(1);
  });
});
