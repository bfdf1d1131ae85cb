import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store';
import { openSqliteStore } from '../store/sqlite-store';
import type { Store } from '../store/store';
import { entryIdentity, identityAt, lineageRefusal } from './lineage';

const TS = 1_700_000_000_000;

/** A primary's log: a client's change, a rejected outcome, a no-op, a server change. */
function fill(store: Store): void {
  store.transact((tx) => {
    tx.append(
      { collection: 'notes', id: 'a', doc: { id: 'a', text: 'é\u{1F600}', n: -0, x: 1e21 }, owner: 'u1' },
      { clientId: 'k1', seq: 1 },
      TS,
    );
    tx.recordOutcome('k1', 1, null);
    tx.appendOutcome('k1', 2, { code: 'REJECTED', message: 'no', retryable: false }, TS + 1);
    tx.appendOutcome('k2', 1, null, TS + 2);
    tx.append({ collection: 'products', id: 'p', doc: null, owner: null }, null, TS + 3);
  });
}

describe('entry identity', () => {
  it('is the same on the primary and on replicas of either store, through the wire', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tideline-lineage-'));
    const primary = new MemoryStore();
    const replicas: Store[] = [new MemoryStore(), openSqliteStore(join(dir, 'r.db'))];
    try {
      fill(primary);
      const page = primary.readLog(0, 100);
      // What repl:changes carries is JSON.
      const wire = JSON.parse(JSON.stringify(page)) as typeof page;
      for (const replica of replicas) {
        replica.applyReplicated(wire.changes, wire.outcomes);
        for (let lsn = 1; lsn <= 4; lsn++) expect(identityAt(replica, lsn)).toBe(identityAt(primary, lsn));
      }
      const ids = [1, 2, 3, 4].map((lsn) => identityAt(primary, lsn));
      expect(new Set(ids).size).toBe(4);
      expect(ids.every((id) => /^[0-9a-f]{64}$/.test(id ?? ''))).toBe(true);
      // Another change at the same LSN and term (a copy that took writes) differs by its time alone.
      const change = page.changes[0]!;
      expect(entryIdentity({ ...change, ts: change.ts + 1 })).not.toBe(entryIdentity(change));
      expect(identityAt(primary, 0)).toBeNull();
      expect(identityAt(primary, 5)).toBeNull();
      primary.compact(2);
      expect(identityAt(primary, 2)).toBeNull();
    } finally {
      for (const r of replicas) r.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lineageRefusal', () => {
  const mine = 'cluster-a';
  const entry = 'e'.repeat(64);
  const other = 'f'.repeat(64);

  it('takes an empty store of any cluster, and data of its own cluster with the same entry', () => {
    expect(
      lineageRefusal(mine, { clusterId: 'cluster-b', checkpoint: 0, checkpointEntry: null }, true, null),
    ).toBeNull();
    expect(lineageRefusal(mine, { clusterId: mine, checkpoint: 9, checkpointEntry: entry }, true, entry)).toBeNull();
    // Before cluster ids: the entry alone decides.
    expect(lineageRefusal(mine, { clusterId: null, checkpoint: 9, checkpointEntry: entry }, true, entry)).toBeNull();
  });

  it('refuses data of another cluster, whatever its entries', () => {
    const refusal = lineageRefusal(
      mine,
      { clusterId: 'cluster-b', checkpoint: 9, checkpointEntry: entry },
      true,
      entry,
    );
    expect(refusal).toMatchObject({ code: 'LINEAGE_MISMATCH', retryable: false });
    expect(refusal?.message).toContain('cluster-b');
  });

  it('refuses another entry at a checkpoint the terms say is shared, and leaves the rest to the terms', () => {
    expect(lineageRefusal(mine, { clusterId: mine, checkpoint: 9, checkpointEntry: other }, true, entry)).toMatchObject(
      {
        code: 'LINEAGE_MISMATCH',
      },
    );
    expect(
      lineageRefusal(mine, { clusterId: null, checkpoint: 9, checkpointEntry: other }, true, entry),
    ).not.toBeNull();
    // A diverged tail (rollback file and snapshot), or an entry one side no longer has: not refused.
    expect(lineageRefusal(mine, { clusterId: mine, checkpoint: 9, checkpointEntry: other }, false, null)).toBeNull();
    expect(lineageRefusal(mine, { clusterId: mine, checkpoint: 9, checkpointEntry: null }, true, entry)).toBeNull();
    expect(lineageRefusal(mine, { clusterId: mine, checkpoint: 9, checkpointEntry: other }, true, null)).toBeNull();
  });
});
