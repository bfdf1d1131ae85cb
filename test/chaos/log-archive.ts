import Database from 'better-sqlite3';
import { join } from 'node:path';

/** One row of a server's change log. */
export interface LoggedChange {
  lsn: number;
  term: number;
  collection: string;
  id: string;
  owner: string | null;
  /** null: a tombstone. */
  body: Record<string, unknown> | null;
  clientId: string | null;
  seq: number | null;
}

/**
 * Every change the primary lineage ever committed, by LSN. Compaction drops a
 * prefix of the server's log, and the checks need all of it (exactly once,
 * atomicity, per-client order), so the driver copies the log here before each
 * compaction. After a restart or a promotion the part above the new primary's
 * horizon is read again from the new primary: what it lost (a tail that never
 * reached the replica) goes, so the archive always tells what the current
 * primary's history is.
 */
export class LogArchive {
  readonly byLsn = new Map<number, LoggedChange>();

  /** Re-reads `(horizon, head]` of a store file (safe beside a running server: WAL), replacing that range. */
  refresh(dataDir: string): { horizon: number; head: number } {
    const db = new Database(join(dataDir, 'tideline.db'), { readonly: true, fileMustExist: true });
    try {
      const meta = (key: string): number => {
        const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined;
        return Number(row?.value ?? 0);
      };
      // One read transaction, so the rows and the horizon agree.
      return db.transaction(() => {
        const horizon = meta('horizon');
        const rows = db
          .prepare(
            'SELECT lsn, term, collection, id, owner, body, client_id, seq FROM changes WHERE lsn > ? ORDER BY lsn',
          )
          .all(horizon) as Array<{
          lsn: number;
          term: number;
          collection: string;
          id: string;
          owner: string | null;
          body: string | null;
          client_id: string | null;
          seq: number | null;
        }>;
        for (const lsn of [...this.byLsn.keys()]) if (lsn > horizon) this.byLsn.delete(lsn);
        for (const r of rows) {
          this.byLsn.set(r.lsn, {
            lsn: r.lsn,
            term: r.term,
            collection: r.collection,
            id: r.id,
            owner: r.owner,
            body: r.body === null ? null : (JSON.parse(r.body) as Record<string, unknown>),
            clientId: r.client_id,
            seq: r.seq,
          });
        }
        return { horizon, head: meta('head_lsn') };
      })();
    } finally {
      db.close();
    }
  }

  /** The highest LSN held. */
  head(): number {
    let max = 0;
    for (const lsn of this.byLsn.keys()) if (lsn > max) max = lsn;
    return max;
  }

  /** The changes in LSN order. */
  ordered(): LoggedChange[] {
    return [...this.byLsn.values()].sort((a, b) => a.lsn - b.lsn);
  }

  /** `clientId#seq` of every mutation that wrote something, with its changes in LSN order. */
  byMutation(): Map<string, LoggedChange[]> {
    const out = new Map<string, LoggedChange[]>();
    for (const c of this.ordered()) {
      if (c.clientId === null || c.seq === null) continue;
      const key = `${c.clientId}#${c.seq}`;
      const list = out.get(key);
      if (list) list.push(c);
      else out.set(key, [c]);
    }
    return out;
  }
}
