import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TidelineError } from '../shared/errors';
import { defineSchema } from '../shared/schema/define-schema';
import type { AppSchema } from '../shared/schema/define-schema';
import { removeDir, tempDataDir } from '../test/support/server-process';
import { checkStoredData } from './schema-check';
import { openSqliteStore } from './store/sqlite-store';
import type { SqliteStore } from './store/sqlite-store';

const schemaWith = (version: number, collections: Record<string, readonly string[]>): AppSchema =>
  defineSchema({
    name: 'app',
    version,
    collections: Object.fromEntries(
      Object.entries(collections).map(([name, indexes]) => [name, { read: 'public', write: 'any', indexes }]),
    ),
    mutators: {},
  });

describe('checkStoredData', () => {
  let dir = '';
  let store: SqliteStore | null = null;
  const open = (): SqliteStore => {
    dir = tempDataDir('tideline-schema-check-');
    store = openSqliteStore(join(dir, 'store.db'));
    return store;
  };
  afterEach(() => {
    store?.close();
    store = null;
    removeDir(dir);
  });
  const put = (s: SqliteStore, collection: string, id: string): void => {
    s.transact((tx) => tx.append({ collection, id, doc: { id }, owner: null }, null, 1));
  };
  const primary = { dropUnknownCollections: false, role: 'primary' as const, now: 2 };

  it('records the schema, reports a version change, and leaves a fitting store alone', () => {
    const s = open();
    put(s, 'a', 'x');
    expect(checkStoredData(s, schemaWith(1, { a: ['f'] }), primary).messages).toEqual([
      "serving schema 'app' version 1",
    ]);
    expect(s.appSchema()).toEqual({ name: 'app', version: 1 });
    expect(checkStoredData(s, schemaWith(1, { a: ['f'] }), primary).messages).toEqual([]);
    expect(checkStoredData(s, schemaWith(2, { a: ['f'] }), primary).messages).toEqual([
      "schema changed: this data directory was served with 'app' version 1, now 'app' version 2",
    ]);
  });

  it('drops indexes for fields no longer indexed and creates new ones, compound indexes too', () => {
    const s = open();
    checkStoredData(s, schemaWith(1, { a: ['f', 'g', 'f+g'], b: ['h'] }), primary);
    expect(
      s
        .appIndexes()
        .map((ix) => `${ix.collection}.${ix.field}`)
        .sort(),
    ).toEqual(['a.f', 'a.f+g', 'a.g', 'b.h']);
    const report = checkStoredData(s, schemaWith(2, { a: ['g', 'k'], b: [] }), primary);
    expect(report.messages).toEqual([
      'dropped the index on a.f (no longer in the schema)',
      'dropped the index on a.f+g (no longer in the schema)',
      'dropped the index on b.h (no longer in the schema)',
      'created an index on a.k',
      "schema changed: this data directory was served with 'app' version 1, now 'app' version 2",
    ]);
    expect(
      s
        .appIndexes()
        .map((ix) => `${ix.collection}.${ix.field}`)
        .sort(),
    ).toEqual(['a.g', 'a.k']);
  });

  it('refuses documents of an unknown collection, naming it and its counts, with the way forward', () => {
    const s = open();
    put(s, 'a', 'x');
    put(s, 'gone', 'y');
    put(s, 'gone', 'z');
    let error: unknown;
    try {
      checkStoredData(s, schemaWith(1, { a: [] }), primary);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TidelineError);
    expect((error as TidelineError).message).toBe(
      "the data directory holds documents of collections that schema 'app' (version 1) does not define: 'gone' (2 documents)",
    );
    expect((error as TidelineError).hint).toContain('--drop-unknown-collections');
    // Nothing was changed by the refusal.
    expect(s.appSchema()).toBeNull();
    expect(s.meta().headLsn).toBe(3);
  });

  it('with dropUnknownCollections a primary tombstones them and compacts the log; a replica leaves them', () => {
    const replicaStore = open();
    put(replicaStore, 'gone', 'y');
    const onReplica = checkStoredData(replicaStore, schemaWith(1, { a: [] }), {
      ...primary,
      dropUnknownCollections: true,
      role: 'replica',
    });
    expect(onReplica.messages[0]).toContain('left to the primary');
    expect(replicaStore.meta().headLsn).toBe(1);
    replicaStore.close();
    removeDir(dir);

    const s = open();
    put(s, 'a', 'x');
    put(s, 'gone', 'y');
    put(s, 'gone', 'z');
    const report = checkStoredData(s, schemaWith(1, { a: [] }), { ...primary, dropUnknownCollections: true });
    expect(report.messages[0]).toBe(
      "dropped collections not in schema 'app': 'gone' (2 documents) (2 tombstones written, log compacted to 5: clients resync from a snapshot)",
    );
    expect(s.meta()).toMatchObject({ headLsn: 5, horizon: 5 });
    expect(s.countByCollection()).toEqual([{ collection: 'a', live: 1, deleted: 0 }]);
    expect(s.readLog(0, 100)).toEqual({ changes: [], outcomes: [], to: 0 });
  });
});
