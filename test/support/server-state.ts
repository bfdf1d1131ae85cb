import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Doc } from '../../shared/json';

/**
 * Reads a server's SQLite file directly, read-only, while the server runs
 * (WAL lets a reader in beside the writer): the ground truth that clients
 * must converge to.
 */
export function readServerState(dataDir: string): {
  docs: Record<string, Record<string, Doc>>;
  headLsn: number;
  /** Document changes in the log (outcome entries of rejected or no-op mutations not counted). */
  changeCount: number;
  commitsPerMutation: Map<string, number>;
  lastSeq: Map<string, number>;
} {
  const db = new Database(join(dataDir, 'tideline.db'), { readonly: true, fileMustExist: true });
  try {
    const docs: Record<string, Record<string, Doc>> = {};
    const rows = db.prepare('SELECT collection, id, body FROM docs WHERE deleted = 0').all() as Array<{
      collection: string;
      id: string;
      body: string;
    }>;
    for (const r of rows) (docs[r.collection] ??= {})[r.id] = JSON.parse(r.body) as Doc;
    const head = db.prepare("SELECT value AS head FROM meta WHERE key = 'head_lsn'").get() as { head: number | null };
    // One mutation may write several documents; count distinct LSN groups by (client, seq) commit.
    const perMutation = db
      .prepare(
        'SELECT client_id, seq, COUNT(DISTINCT collection || char(0) || id) AS docs, COUNT(*) AS n FROM changes WHERE client_id IS NOT NULL GROUP BY client_id, seq',
      )
      .all() as Array<{ client_id: string; seq: number; docs: number; n: number }>;
    const commitsPerMutation = new Map<string, number>();
    for (const r of perMutation) commitsPerMutation.set(`${r.client_id}#${r.seq}`, r.n / r.docs);
    const clients = db.prepare('SELECT client_id, last_seq FROM clients WHERE last_seq > 0').all() as Array<{
      client_id: string;
      last_seq: number;
    }>;
    const changeCount = (db.prepare('SELECT COUNT(*) AS n FROM changes').get() as { n: number }).n;
    return {
      docs,
      headLsn: head.head ?? 0,
      changeCount,
      commitsPerMutation,
      lastSeq: new Map(clients.map((c) => [c.client_id, c.last_seq])),
    };
  } finally {
    db.close();
  }
}

/** The change log and the live documents of a store file, for comparing nodes row by row. */
export function readLogAndDocs(file: string): {
  changes: Array<{ lsn: number; term: number; collection: string; id: string; body: string | null }>;
  /** Outcome entries (rejected and no-op mutations) in the log. */
  outcomes: Array<{ lsn: number; term: number; client_id: string; seq: number; code: string | null }>;
  docs: Array<{ collection: string; id: string; lsn: number; body: string }>;
  head: number;
} {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const changes = db.prepare('SELECT lsn, term, collection, id, body FROM changes ORDER BY lsn').all() as Array<{
      lsn: number;
      term: number;
      collection: string;
      id: string;
      body: string | null;
    }>;
    const docs = db
      .prepare('SELECT collection, id, lsn, body FROM docs WHERE deleted = 0 ORDER BY collection, id')
      .all() as Array<{ collection: string; id: string; lsn: number; body: string }>;
    const outcomes = db.prepare('SELECT lsn, term, client_id, seq, code FROM outcomes ORDER BY lsn').all() as Array<{
      lsn: number;
      term: number;
      client_id: string;
      seq: number;
      code: string | null;
    }>;
    const head = db.prepare("SELECT value FROM meta WHERE key = 'head_lsn'").get() as { value: number };
    return { changes, outcomes, docs, head: head.value };
  } finally {
    db.close();
  }
}

/** The live documents of a store as they were at `lsn`, rebuilt from its (uncompacted) change log. */
export function docsAsOf(
  file: string,
  lsn: number,
): Array<{ collection: string; id: string; lsn: number; body: string }> {
  const latest = new Map<string, { collection: string; id: string; lsn: number; body: string | null }>();
  for (const c of readLogAndDocs(file).changes) {
    if (c.lsn <= lsn) latest.set(`${c.collection}\u0000${c.id}`, c);
  }
  return [...latest.values()]
    .filter((d): d is { collection: string; id: string; lsn: number; body: string } => d.body !== null)
    .map(({ collection, id, lsn: l, body }) => ({ collection, id, lsn: l, body }))
    .sort((a, b) => (a.collection === b.collection ? (a.id < b.id ? -1 : 1) : a.collection < b.collection ? -1 : 1));
}

/**
 * What a node knows of each client's mutations: last seqs and kept
 * rejections, ordered, for comparing a replica (or a restored node) with its
 * primary: a promoted node must answer for every seq as its primary would.
 */
export function readOutcomes(file: string): {
  clients: Array<{ client_id: string; last_seq: number }>;
  rejections: Array<{ client_id: string; seq: number; code: string; message: string; retryable: number }>;
} {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const clients = db
      .prepare('SELECT client_id, last_seq FROM clients WHERE last_seq > 0 ORDER BY client_id')
      .all() as Array<{
      client_id: string;
      last_seq: number;
    }>;
    const rejections = db
      .prepare('SELECT client_id, seq, code, message, retryable FROM rejections ORDER BY client_id, seq')
      .all() as Array<{ client_id: string; seq: number; code: string; message: string; retryable: number }>;
    return { clients, rejections };
  } finally {
    db.close();
  }
}
