import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { TidelineError } from '../../shared/errors';
import { createPrivateFile, makePrivate } from './private-files';

export const STORE_FILE = 'tideline.db';
/** Where `POST /admin/backup` writes, under the data directory: its targets are confined to it. */
export const BACKUPS_DIR = 'backups';

/**
 * The file `POST /admin/backup {path}` may write: `requested` (relative to
 * `root`, or absolute inside it) resolved inside `root`, or `defaultName` there.
 * Refused with BAD_REQUEST, before anything is written: a path outside `root`
 * (`..`, another absolute path, `/proc/...`), `root` itself, a path through a
 * symbolic link or a non-directory, one of `protectedPaths` (the live store
 * and its -wal, -shm, -journal), and any existing file (a backup never
 * overwrites). Only `lstat`s existing parts of the path.
 */
export function backupTarget(
  root: string,
  requested: string | undefined,
  defaultName: string,
  protectedPaths: readonly string[],
): string {
  const base = resolve(root);
  const refuse = (why: string): never => {
    throw new TidelineError('BAD_REQUEST', `backup path ${JSON.stringify(requested)} refused: ${why}`, {
      hint: `give a new file name relative to ${base} (or leave "path" out for a dated name there)`,
    });
  };
  if (requested !== undefined && requested.includes('\0')) refuse('it contains a NUL byte');
  const target = resolve(base, requested ?? defaultName);
  const inside = relative(base, target);
  if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    refuse(`backups are written only inside ${base}`);
  }
  for (const path of protectedPaths) {
    for (const suffix of ['', '-wal', '-shm', '-journal']) {
      if (target === resolve(path) + suffix) refuse('that is the live store');
    }
  }
  // Every existing directory on the way must be a real directory, not a link out of `root`.
  let at = base;
  const parts = inside.split(sep);
  for (const [i, part] of parts.entries()) {
    at = join(at, part);
    const last = i === parts.length - 1;
    let stat;
    try {
      stat = lstatSync(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw err;
    }
    if (last) refuse('a file is already there (a backup never overwrites)');
    if (stat.isSymbolicLink()) refuse(`${at} is a symbolic link`);
    if (!stat.isDirectory()) refuse(`${at} is not a directory`);
  }
  return target;
}

/**
 * Makes a fresh backup copy one self-contained file: SQLite's backup keeps
 * the store's WAL mode, and a later read-only open of a WAL file leaves
 * `-wal` and `-shm` files beside it. A restored store is switched back to WAL
 * when it is opened.
 */
export function sealBackup(path: string): void {
  const db = new Database(path, { fileMustExist: true });
  try {
    db.pragma('journal_mode = DELETE');
  } finally {
    db.close();
  }
}

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
  if (existsSync(outPath)) {
    throw new TidelineError('BAD_REQUEST', `${outPath} already exists`, {
      hint: 'a backup never overwrites a file: give a new name',
    });
  }
  const db = new Database(storePath, { readonly: true, fileMustExist: true });
  try {
    // 0600 before SQLite writes a page into it; `wx` refuses a file made since the check above.
    createPrivateFile(outPath);
    await db.backup(outPath);
    sealBackup(outPath);
  } catch (err) {
    if (!(err instanceof Error && 'code' in err && err.code === 'EEXIST')) rmSync(outPath, { force: true });
    throw err;
  } finally {
    db.close();
  }
  return backupLsn(outPath);
}

/**
 * Checks, reading only, that `path` is a whole Tideline backup: a SQLite file
 * that passes `quick_check` and holds the store's meta (server id, head LSN).
 * Throws BAD_REQUEST naming the file otherwise (not a raw SQLITE_NOTADB).
 */
export function checkBackupFile(path: string): void {
  const refuse = (why: string, cause?: unknown): never => {
    throw new TidelineError('BAD_REQUEST', `${path} is not a Tideline backup: ${why}`, {
      ...(cause === undefined ? {} : { cause }),
      hint: 'give a file written by POST /admin/backup or npm run backup',
    });
  };
  if (!existsSync(path)) refuse('no such file');
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const check = String(db.pragma('quick_check', { simple: true }));
    if (check !== 'ok') refuse(`SQLite's quick_check says: ${check}`);
    const tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").all();
    for (const table of ['meta', 'docs', 'changes']) {
      if (!tables.some((t) => t.name === table)) refuse(`it has no ${table} table`);
    }
    const keys = new Set(
      db
        .prepare<[], { key: string }>('SELECT key FROM meta')
        .all()
        .map((r) => r.key),
    );
    for (const key of ['server_id', 'head_lsn', 'schema_version']) {
      if (!keys.has(key)) refuse(`its meta has no ${key}`);
    }
  } catch (err) {
    if (err instanceof TidelineError) throw err;
    refuse(err instanceof Error ? err.message : String(err), err);
  } finally {
    db?.close();
  }
}

/**
 * Lays a backup down as the store of `dataDir`, under a new server id (the
 * restored node is a node of its own), for a node that then catches up as a
 * replica. Refuses to overwrite an existing store, checks the backup first,
 * and works on a temp file linked into place last: a failed restore leaves
 * no store behind.
 */
export function restoreBackup(backupPath: string, dataDir: string): number {
  const target = join(dataDir, STORE_FILE);
  if (existsSync(target)) {
    throw new TidelineError('BAD_REQUEST', `${target} already exists`, {
      hint: 'restore into an empty data directory, or move the existing store aside first',
    });
  }
  checkBackupFile(backupPath);
  mkdirSync(dataDir, { recursive: true });
  const tmp = `${target}.${randomUUID()}.restore`;
  try {
    createPrivateFile(tmp);
    copyFileSync(backupPath, tmp);
    // copyFile gives the copy the backup's mode.
    makePrivate(tmp);
    const db = new Database(tmp);
    try {
      db.prepare("UPDATE meta SET value = ? WHERE key = 'server_id'").run(randomUUID());
      // Back to one file (the copy is in WAL mode), so only `tmp` moves into place.
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    const lsn = backupLsn(tmp);
    linkSync(tmp, target);
    return lsn;
  } finally {
    for (const suffix of ['', '-wal', '-shm']) rmSync(tmp + suffix, { force: true });
  }
}
