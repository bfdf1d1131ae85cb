import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { TidelineError } from '../../shared/errors';
import { createPrivateFile } from './private-files';

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
  } catch (err) {
    if (!(err instanceof Error && 'code' in err && err.code === 'EEXIST')) rmSync(outPath, { force: true });
    throw err;
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
