import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TidelineError } from '../../shared/errors';
import { createPrivateFile } from './private-files';

export const STORE_FILE = 'tideline.db';

/** The LSN a backup file holds: its head. */
export function backupLsn(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'head_lsn'").get();
    if (!row) throw new TidelineError('INTERNAL', `${path} is not a Tideline backup`);
    return row.value;
  } finally {
    db.close();
  }
}

/**
 * Writes a consistent copy of the store file at `storePath` to `outPath`
 * while a server may be writing to it (SQLite's online backup API reads one
 * snapshot of the WAL database). Returns the backup's LSN.
 */
export async function backupStoreFile(storePath: string, outPath: string): Promise<number> {
  if (!existsSync(storePath)) throw new TidelineError('INTERNAL', `no store at ${storePath}`);
  const db = new Database(storePath, { readonly: true, fileMustExist: true });
  try {
    // 0600 before SQLite writes a page into it; refuses an existing file.
    createPrivateFile(outPath);
    await db.backup(outPath);
  } finally {
    db.close();
  }
  return backupLsn(outPath);
}

/**
 * Lays a backup down as the store of `dataDir`, under a new server id (the
 * restored node is a node of its own), for a node that then catches up as a
 * replica. Refuses to overwrite an existing store.
 */
export function restoreBackup(backupPath: string, dataDir: string): number {
  const target = join(dataDir, STORE_FILE);
  if (existsSync(target)) {
    throw new TidelineError('INTERNAL', `${target} already exists`, {
      hint: 'restore into an empty data directory, or move the existing store aside first',
    });
  }
  mkdirSync(dataDir, { recursive: true });
  copyFileSync(backupPath, target);
  const db = new Database(target);
  try {
    db.prepare("UPDATE meta SET value = ? WHERE key = 'server_id'").run(randomUUID());
  } finally {
    db.close();
  }
  return backupLsn(target);
}
