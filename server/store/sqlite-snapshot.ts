import Database from 'better-sqlite3';
import { TidelineError } from '../../shared/errors';
import type { ErrorCode, WireErrorShape } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import { scopeDocBytes } from './store';
import type { Scope, ScopeDoc, SnapshotCursor } from './store';

interface ScopeRow {
  collection: string;
  id: string;
  body: string;
}

/**
 * A client snapshot of the SQLite store at `path`, read on a connection of
 * its own. In WAL mode a read transaction sees the database as of its first
 * read while the writer goes on, so the head LSN, the client's outcomes and
 * every page come from one point. Pages are read by keyset on the primary
 * key (collection, id), a page at a time: the process never holds more of the
 * scope than one page. Until `close`, the transaction keeps the WAL from
 * being checkpointed past its point, so callers bound how long it stays open.
 */
export function openSqliteSnapshot(path: string, scope: Scope, clientId: string): SnapshotCursor {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.exec('BEGIN');
    // The first read fixes the transaction's view of the database: everything below reads as of it.
    const head = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'head_lsn'").get();
    const lastSeq =
      db.prepare<[string], { last_seq: number }>('SELECT last_seq FROM clients WHERE client_id = ?').get(clientId)
        ?.last_seq ?? 0;
    const selectRejection = db.prepare<[string, number], { code: string; message: string; retryable: number }>(
      'SELECT code, message, retryable FROM rejections WHERE client_id = ? AND seq = ?',
    );
    const allOf = scope.allOf ?? [];
    const visible = `deleted = 0 AND (owner IS NULL OR owner = ?${allOf.length > 0 ? ` OR collection IN (${allOf.map(() => '?').join(', ')})` : ''})`;
    const first = db.prepare<Array<string | number>, ScopeRow>(
      `SELECT collection, id, body FROM docs WHERE ${visible} ORDER BY collection, id LIMIT ?`,
    );
    const after = db.prepare<Array<string | number>, ScopeRow>(
      `SELECT collection, id, body FROM docs WHERE ${visible} AND (collection, id) > (?, ?)
       ORDER BY collection, id LIMIT ?`,
    );
    let position: { collection: string; id: string } | null = null;
    let done = false;
    let closed = false;
    return {
      asOf: Number(head?.value ?? 0),
      lastSeq,
      rejection(seq: number): WireErrorShape | undefined {
        if (closed) throw closedError();
        const row = selectRejection.get(clientId, seq);
        return row === undefined
          ? undefined
          : { code: row.code as ErrorCode, message: row.message, retryable: row.retryable === 1 };
      },
      next(maxDocs: number, maxBytes: number): { docs: ScopeDoc[]; done: boolean } {
        if (closed) throw closedError();
        if (done) return { docs: [], done: true };
        const n = Math.max(1, Math.floor(Math.min(maxDocs, 1_000_000)));
        // One row past the page tells whether more follow.
        const rows =
          position === null
            ? first.iterate(scope.userId, ...allOf, n + 1)
            : after.iterate(scope.userId, ...allOf, position.collection, position.id, n + 1);
        const docs: ScopeDoc[] = [];
        let bytes = 0;
        let more = false;
        for (const row of rows) {
          const size = scopeDocBytes(row.collection, row.body);
          if (docs.length === n || (docs.length > 0 && bytes + size > maxBytes)) {
            more = true;
            break; // ends the iteration, which resets the statement
          }
          docs.push({ collection: row.collection, doc: JSON.parse(row.body) as Doc });
          bytes += size;
          position = { collection: row.collection, id: row.id };
        }
        done = !more;
        return { docs, done };
      },
      close(): void {
        if (closed) return;
        closed = true;
        try {
          if (db.inTransaction) db.exec('ROLLBACK');
        } finally {
          db.close();
        }
      },
    };
  } catch (err) {
    db.close();
    throw new TidelineError('INTERNAL', `cannot read a snapshot of the store at ${path}`, { cause: err });
  }
}

function closedError(): TidelineError {
  return new TidelineError('INTERNAL', 'a snapshot cursor was read after it was closed');
}
