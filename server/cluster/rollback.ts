import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Change } from '../../shared/protocol/change';
import type { OutcomeEntry } from '../store/store';

/**
 * Log entries that a node committed past the point where its log forked from
 * the new primary's: document changes and outcomes (an outcome line has
 * `clientId`, `seq` and `error`, and no `collection`). They are never silently
 * dropped: they go to a file for the operator, one JSON entry per line.
 */
export function writeRollbackFile(
  dataDir: string,
  changes: ReadonlyArray<Change | OutcomeEntry>,
  now: number,
): string | null {
  if (changes.length === 0) return null;
  const dir = join(dataDir, 'rollback');
  mkdirSync(dir, { recursive: true });
  const first = changes[0]!.lsn;
  const last = changes[changes.length - 1]!.lsn;
  const path = join(dir, `rollback-${first}-${last}-${new Date(now).toISOString().replace(/[:.]/g, '-')}.jsonl`);
  // It holds documents and client ids, like the store: private to the server's user, whatever the umask.
  writeFileSync(path, changes.map((c) => JSON.stringify(c)).join('\n') + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

export function listRollbackFiles(dataDir: string): string[] {
  try {
    return readdirSync(join(dataDir, 'rollback'))
      .filter((f) => f.endsWith('.jsonl'))
      .map((f) => join(dataDir, 'rollback', f));
  } catch {
    return [];
  }
}
