import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { randomUUID } from 'node:crypto';
import { dirname } from 'node:path';
import { TidelineError } from '../../shared/errors';

/**
 * Modes for what holds every document, client id and secret: only the
 * server's own user may read them. Set with chmod after creation, so the
 * process umask (often 022) cannot widen them.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and its parents) if missing and makes it 0700. Returns the
 * mode it had when it existed with another one (for a note to the operator).
 */
export function ensurePrivateDir(dir: string): number | null {
  try {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const before = statSync(dir).mode & 0o777;
    if (before === PRIVATE_DIR_MODE) return null;
    chmodSync(dir, PRIVATE_DIR_MODE);
    return before;
  } catch (err) {
    throw new TidelineError('INTERNAL', `cannot make ${dir} a private (0700) directory: ${messageOf(err)}`, {
      cause: err,
      hint: 'run the server as the owner of its data directory',
    });
  }
}

/** Makes an existing file 0600; a missing one is skipped (SQLite's -wal and -shm come and go). */
export function makePrivate(path: string): void {
  try {
    chmodSync(path, PRIVATE_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
}

/**
 * Creates an empty 0600 file at `path`, failing if anything is there
 * (`wx`: no race with another writer, never through a planted file).
 * SQLite keeps the mode of an existing file and gives its -wal and -shm the
 * database file's mode.
 */
export function createPrivateFile(path: string): void {
  const fd = openSync(path, 'wx', PRIVATE_FILE_MODE);
  closeSync(fd);
  chmodSync(path, PRIVATE_FILE_MODE);
}

/** Writes `text` to `path` all or nothing: a 0600 temp file, fsync, rename, fsync of the directory. */
export function writePrivateFileAtomically(path: string, text: string): void {
  const tmp = `${path}.${randomUUID()}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', PRIVATE_FILE_MODE);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, PRIVATE_FILE_MODE);
    renameSync(tmp, path);
    syncDir(dirname(path));
  } catch (err) {
    if (existsSync(tmp)) rmSync(tmp, { force: true });
    throw err;
  }
}

/** Makes a rename in `dir` durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
