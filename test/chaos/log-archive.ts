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

/** A mutation that wrote no document: a rejection (code set) or a no-op (code null), with its own LSN. */
export interface LoggedOutcome {
  lsn: number;
  clientId: string;
  seq: number;
  code: string | null;
}

/**
 * Every change (and outcome entry, on stores that log them) the primary lineage ever committed, by LSN. Compaction drops a
 * prefix of the server's log, and the checks need all of it (exactly once,
 * atomicity, per-client order), so the driver copies the log here before each
 * compaction. After a restart or a promotion the part above the new primary's
 * horizon is read again from the new primary: what it lost (a tail that never
 * reached the replica) goes, so the archive always tells what the current
 * primary's history is.
 */
export class LogArchive {
  readonly byLsn = new Map<number, LoggedChange>();
  readonly outcomes = new Map<number, LoggedOutcome>();
  /** Whether the store logs outcome entries (protocol 3 on); older stores keep rejections apart, with no LSN. */
  logsOutcomes = false;

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
        for (const lsn of [...this.outcomes.keys()]) if (lsn > horizon) this.outcomes.delete(lsn);
        const hasOutcomes = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'").get();
        this.logsOutcomes = hasOutcomes !== undefined;
        if (hasOutcomes) {
          const outcomeRows = db
            .prepare('SELECT lsn, client_id, seq, code FROM outcomes WHERE lsn > ? ORDER BY lsn')
            .all(horizon) as Array<{ lsn: number; client_id: string; seq: number; code: string | null }>;
          for (const r of outcomeRows) {
            this.outcomes.set(r.lsn, { lsn: r.lsn, clientId: r.client_id, seq: r.seq, code: r.code });
          }
        }
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
    for (const lsn of this.outcomes.keys()) if (lsn > max) max = lsn;
    return max;
  }

  /** `clientId#seq` of every mutation that committed: it wrote changes, or it is a no-op outcome entry. */
  committedKeys(): Set<string> {
    const out = new Set(this.byMutation().keys());
    for (const o of this.outcomes.values()) if (o.code === null) out.add(`${o.clientId}#${o.seq}`);
    return out;
  }

  /** `clientId#seq` → the LSNs of the outcome entries of mutations that wrote nothing (rejections with their code). */
  outcomesByMutation(): Map<string, LoggedOutcome[]> {
    const out = new Map<string, LoggedOutcome[]>();
    for (const o of [...this.outcomes.values()].sort((a, b) => a.lsn - b.lsn)) {
      const key = `${o.clientId}#${o.seq}`;
      const list = out.get(key);
      if (list) list.push(o);
      else out.set(key, [o]);
    }
    return out;
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
