import Database from 'better-sqlite3';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, startServerProcess, TEST_ADMIN_TOKEN, tempDataDir } from '../support/server-process';
import { adminPutProduct } from '../support/admin-put';
import type { ServerProcess } from '../support/server-process';

interface Answer {
  status: number;
  body: { path?: string; lsn?: number; error?: { code: string; message: string } };
}

async function backup(url: string, path: string): Promise<Answer> {
  const res = await fetch(`${url}/admin/backup`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ path }),
    // A path under /proc used to hang the node: this request must be answered, and quickly.
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

/** `PRAGMA integrity_check` and the document count of the live store, read beside the running server. */
function storeState(dataDir: string): { integrity: string; docs: number } {
  const db = new Database(join(dataDir, 'tideline.db'), { readonly: true, fileMustExist: true });
  try {
    return {
      integrity: String(db.pragma('integrity_check', { simple: true })),
      docs: (db.prepare('SELECT count(*) AS n FROM docs').get() as { n: number }).n,
    };
  } finally {
    db.close();
  }
}

/** Every file under `dir` with its size and mtime, to show a refused request wrote nothing. */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => {
      const s = statSync(join(dir, f));
      return s.isDirectory() ? `${f}/` : `${f} ${s.size} ${s.mtimeMs}`;
    })
    .filter((f) => !/tideline\.db-(wal|shm)/.test(f))
    .sort();
}

describe('POST /admin/backup writes only new files inside <data>/backups', () => {
  let server: ServerProcess;
  let outside: string;

  beforeAll(async () => {
    server = await startServerProcess();
    outside = tempDataDir('tideline-outside-');
    for (let i = 0; i < 20; i++) await adminPutProduct(server.url, `p${i}`);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    removeDir(server.dataDir);
    removeDir(outside);
  });

  it('takes a backup at a relative path inside backups/, and refuses to write it again', async () => {
    const first = await backup(server.url, 'nightly/one.db');
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.path).toBe(join(server.dataDir, 'backups', 'nightly', 'one.db'));
    const before = readFileSync(first.body.path!);
    // One self-contained file: no temp file, no -wal or -shm beside it.
    expect(readdirSync(join(server.dataDir, 'backups', 'nightly'))).toEqual(['one.db']);

    const again = await backup(server.url, 'nightly/one.db');
    expect(again.status).toBe(400);
    expect(again.body.error?.code).toBe('BAD_REQUEST');
    expect(again.body.error?.message).toMatch(/already there/);
    expect(readFileSync(first.body.path!).equals(before)).toBe(true);
  });

  it('refuses the live store, /proc, escapes and links with 400 and changes nothing', async () => {
    const backups = join(server.dataDir, 'backups');
    mkdirSync(backups, { recursive: true });
    symlinkSync(outside, join(backups, 'link'));
    const dataBefore = listing(server.dataDir);
    const stateBefore = storeState(server.dataDir);
    expect(stateBefore).toEqual({ integrity: 'ok', docs: 20 });

    const refused = [
      join(server.dataDir, 'tideline.db'),
      '../tideline.db',
      '/proc/self/mem',
      '/proc/1/fd/0',
      '../x',
      '../../x',
      join(outside, 'y.db'),
      'link/z.db',
      '.',
      '',
    ];
    for (const path of refused) {
      const answer = await backup(server.url, path);
      expect(answer.status, `${path}: ${JSON.stringify(answer.body)}`).toBe(400);
      expect(answer.body.error?.code, path).toBe('BAD_REQUEST');
    }

    expect(listing(server.dataDir)).toEqual(dataBefore);
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(join(server.dataDir, 'x'))).toBe(false);
    expect(storeState(server.dataDir)).toEqual(stateBefore);
    // The node still serves and writes.
    await adminPutProduct(server.url, 'after');
    expect(storeState(server.dataDir)).toEqual({ integrity: 'ok', docs: 21 });
    const good = await backup(server.url, 'after.db');
    expect(good.status, JSON.stringify(good.body)).toBe(200);
    expect(good.body.lsn).toBeGreaterThan(0);
  });
});
