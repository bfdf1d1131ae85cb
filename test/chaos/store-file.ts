import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Doc } from '../../shared/json';

/** What the checks read from a stopped node's SQLite file. */
export interface StoreFile {
  /** Live documents by collection and id, with their owner column. */
  docs: Map<string, Map<string, { owner: string | null; doc: Doc }>>;
  /** `clientId#seq` → code, from the rejections table. */
  rejections: Map<string, string>;
  lastSeq: Map<string, number>;
  head: number;
}

export function readStoreFile(dataDir: string): StoreFile {
  const db = new Database(join(dataDir, 'tideline.db'), { readonly: true, fileMustExist: true });
  try {
    const docs = new Map<string, Map<string, { owner: string | null; doc: Doc }>>();
    const rows = db.prepare('SELECT collection, id, owner, body FROM docs WHERE deleted = 0').all() as Array<{
      collection: string;
      id: string;
      owner: string | null;
      body: string;
    }>;
    for (const r of rows) {
      let m = docs.get(r.collection);
      if (!m) docs.set(r.collection, (m = new Map<string, { owner: string | null; doc: Doc }>()));
      m.set(r.id, { owner: r.owner, doc: JSON.parse(r.body) as Doc });
    }
    const rejections = new Map<string, string>();
    for (const r of db.prepare('SELECT client_id, seq, code FROM rejections').all() as Array<{
      client_id: string;
      seq: number;
      code: string;
    }>) {
      rejections.set(`${r.client_id}#${r.seq}`, r.code);
    }
    const lastSeq = new Map<string, number>();
    for (const r of db.prepare('SELECT client_id, last_seq FROM clients WHERE last_seq > 0').all() as Array<{
      client_id: string;
      last_seq: number;
    }>) {
      lastSeq.set(r.client_id, r.last_seq);
    }
    const head = db.prepare("SELECT value FROM meta WHERE key = 'head_lsn'").get() as { value: number } | undefined;
    return { docs, rejections, lastSeq, head: Number(head?.value ?? 0) };
  } finally {
    db.close();
  }
}
