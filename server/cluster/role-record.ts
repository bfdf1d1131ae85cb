import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * The last role decision this node made on its own, kept in `<data>/role.json`.
 *
 * A promotion lives only in the store's term (the term goes up) and in this
 * record (it was *this* store that started that term). The record lets a
 * restarted node tell "I am the primary of term T" from "I followed a primary
 * of term T": only the first may take writes at T, whatever `--primary` its
 * command line still carries. Stepping down overwrites the record, so a node
 * that once led a term never leads it again after it followed someone else.
 */
const roleRecordSchema = z.object({
  role: z.enum(['primary', 'replica']),
  term: z.number().int().positive(),
  /** ISO time of the decision, for the operator. */
  at: z.string(),
  /** For a replica: whom it decided to follow, if it knew. */
  primaryUrl: z.string().nullable().optional(),
});
export type RoleRecord = z.infer<typeof roleRecordSchema>;

export const ROLE_FILE = 'role.json';

/** The record in `dataDir`, or null when there is none (a node that was never promoted). */
export function readRoleRecord(dataDir: string): RoleRecord | null {
  let text: string;
  try {
    text = readFileSync(join(dataDir, ROLE_FILE), 'utf8');
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  // A record we cannot read must not be guessed at: the operator has to look.
  const parsed = roleRecordSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${join(dataDir, ROLE_FILE)} is not a role record: ${parsed.error.message}`);
  return parsed.data;
}

/**
 * Replaces the record durably: write a temp file, fsync it, rename it over the
 * old one, fsync the directory. A crash leaves either the old or the new record.
 */
export function writeRoleRecord(dataDir: string, record: RoleRecord): void {
  const path = join(dataDir, ROLE_FILE);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, JSON.stringify(record) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dataDir, 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === 'ENOENT';
}
