import type pg from 'pg';
import { TidelineError } from '../../shared/errors';
import type { ErrorCode, WireErrorShape } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import type { AsyncSnapshotCursor } from './async-store';
import { scopeDocBytes } from './store';
import type { Scope, ScopeDoc } from './store';

/**
 * A client snapshot of a PostgreSQL store, on a connection of its own (from
 * the snapshot pool) in a REPEATABLE READ READ ONLY transaction: the head
 * LSN, the client's outcomes and every page come from one point while nodes
 * commit. Pages are read by keyset on (collection, id). The transaction holds
 * back vacuum of rows it may see, so callers bound how long it stays open,
 * and `close` it on every path (it gives the connection back).
 */
export async function openPgSnapshot(
  pool: pg.Pool,
  schema: string,
  scope: Scope,
  clientId: string,
): Promise<AsyncSnapshotCursor> {
  const c = await pool.connect();
  // See PgStore.inTransaction: a checked-out client needs its own error listener.
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken = err;
  };
  c.on('error', onError);
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The first statement fixes the snapshot: everything below reads as of it.
    const head = await c.query<{ lsn: number }>(`SELECT lsn FROM ${schema}.head WHERE id = 1`);
    const seq = await c.query<{ last_seq: number }>(`SELECT last_seq FROM ${schema}.clients WHERE client_id = $1`, [
      clientId,
    ]);
    const allOf = [...(scope.allOf ?? [])];
    let position: { collection: string; id: string } | null = null;
    let done = false;
    let closed = false;
    let tail: Promise<unknown> = Promise.resolve();
    // One statement at a time on the connection, in call order.
    const serial = <T>(fn: () => Promise<T>): Promise<T> => {
      const run = tail.then(() => {
        if (closed) throw new TidelineError('INTERNAL', 'a snapshot cursor was read after it was closed');
        return fn();
      });
      tail = run.then(
        () => undefined,
        () => undefined,
      );
      return run;
    };
    return {
      asOf: head.rows[0]?.lsn ?? 0,
      lastSeq: seq.rows[0]?.last_seq ?? 0,
      rejection: (s) =>
        serial(async (): Promise<WireErrorShape | undefined> => {
          const { rows } = await c.query<{ code: string; message: string; retryable: boolean }>(
            `SELECT code, message, retryable FROM ${schema}.rejections WHERE client_id = $1 AND seq = $2`,
            [clientId, s],
          );
          const row = rows[0];
          return row === undefined
            ? undefined
            : { code: row.code as ErrorCode, message: row.message, retryable: row.retryable };
        }),
      next: (maxDocs, maxBytes) =>
        serial(async () => {
          if (done) return { docs: [], done: true };
          const n = Math.max(1, Math.floor(Math.min(maxDocs, 1_000_000)));
          const params: unknown[] = [scope.userId, allOf];
          let where = `NOT deleted AND (owner IS NULL OR owner = $1 OR collection = ANY($2::text[]))`;
          if (position !== null) {
            params.push(position.collection, position.id);
            where += ` AND (collection, id) > ($3, $4)`;
          }
          params.push(n + 1);
          // One row past the page tells whether more follow.
          const { rows } = await c.query<{ collection: string; id: string; body: string }>(
            `SELECT collection, id, body FROM ${schema}.docs WHERE ${where} ORDER BY collection, id LIMIT $${params.length}`,
            params,
          );
          const docs: ScopeDoc[] = [];
          let bytes = 0;
          let more = false;
          for (const row of rows) {
            const size = scopeDocBytes(row.collection, row.body);
            if (docs.length === n || (docs.length > 0 && bytes + size > maxBytes)) {
              more = true;
              break;
            }
            docs.push({ collection: row.collection, doc: JSON.parse(row.body) as Doc });
            bytes += size;
            position = { collection: row.collection, id: row.id };
          }
          done = !more;
          return { docs, done };
        }),
      close: async () => {
        if (closed) return;
        await tail;
        closed = true;
        try {
          await c.query('COMMIT');
        } catch (err) {
          broken ??= err instanceof Error ? err : new Error(String(err));
        }
        c.removeListener('error', onError);
        c.release(broken);
      },
    };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    c.removeListener('error', onError);
    c.release(broken);
    throw new TidelineError('INTERNAL', `cannot read a snapshot of the PostgreSQL store (schema ${schema})`, {
      cause: err,
    });
  }
}
