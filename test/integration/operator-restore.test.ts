import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  removeDir,
  startServerProcess,
  TEST_ADMIN_TOKEN,
  TEST_CLUSTER_SECRET,
  TEST_SECRET,
  tempDataDir,
} from '../support/server-process';
import { adminPutProduct } from '../support/admin-put';
import type { ServerProcess } from '../support/server-process';

const ROOT = resolve(import.meta.dirname, '../..');

/** Runs `server/main.ts --restore FILE` to its exit (or kills it once it listens) and returns its exit code and output. */
function restoreRun(file: string, dataDir: string, primaryUrl: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'server/main.ts',
      '--port',
      '0',
      '--data',
      dataDir,
      '--no-seed',
      '--restore',
      file,
      '--primary',
      primaryUrl,
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        TIDELINE_SECRET: TEST_SECRET,
        TIDELINE_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
        TIDELINE_CLUSTER_SECRET: TEST_CLUSTER_SECRET,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const onData = (d: Buffer): void => {
    out += d.toString();
    // A restore that goes through is stopped at once: the cases here are about refusing.
    if (/listening on/.test(out)) child.kill('SIGTERM');
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((ok) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      ok({ code, out });
    }),
  );
}

describe('--restore checks the file before it lays anything down', () => {
  let primary: ServerProcess;
  let backupPath: string;
  const dirs: string[] = [];

  beforeAll(async () => {
    primary = await startServerProcess();
    for (let i = 0; i < 10; i++) await adminPutProduct(primary.url, `r${i}`);
    backupPath = (await primary.admin<{ path: string }>('/backup', {})).path;
  }, 60_000);
  afterAll(async () => {
    await primary?.stop();
    removeDir(primary.dataDir);
    for (const dir of dirs) removeDir(dir);
  });

  const junk: Array<{ name: string; make: (dir: string) => string; says: RegExp }> = [
    {
      name: 'a text file',
      make: (dir) => {
        const path = join(dir, 'notes.txt');
        writeFileSync(path, 'these are not the rows you are looking for\n'.repeat(200));
        return path;
      },
      says: /is not a Tideline backup: file is not a database/,
    },
    {
      name: 'a SQLite file of another program',
      make: (dir) => {
        const path = join(dir, 'other.db');
        const db = new Database(path);
        db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
        db.close();
        return path;
      },
      says: /is not a Tideline backup: it has no meta table/,
    },
    {
      name: 'a truncated backup',
      make: (dir) => {
        const path = join(dir, 'cut.db');
        const whole = readFileSync(backupPath);
        writeFileSync(path, whole.subarray(0, Math.floor(whole.length / 2)));
        return path;
      },
      says: /is not a Tideline backup/,
    },
    { name: 'a missing file', make: (dir) => join(dir, 'nope.db'), says: /is not a Tideline backup: no such file/ },
  ];

  it.each(junk)(
    'refuses $name with a clear message and leaves no store',
    async ({ make, says }) => {
      const work = tempDataDir('tideline-restore-src-');
      const dataDir = join(tempDataDir('tideline-restore-'), 'data');
      dirs.push(work, resolve(dataDir, '..'));
      const { code, out } = await restoreRun(make(work), dataDir, primary.url);
      expect(code, out).toBe(1);
      expect(out).toMatch(says);
      expect(out).not.toMatch(/listening on/);
      // The operator's message, not a stack.
      expect(out).not.toMatch(/^\s+at /m);
      const left = existsSync(dataDir) ? readdirSync(dataDir).filter((f) => f.startsWith('tideline.db')) : [];
      expect(left).toEqual([]);
    },
    40_000,
  );

  it('restores a real backup, which then catches up as a replica', async () => {
    const dataDir = join(tempDataDir('tideline-restore-ok-'), 'data');
    dirs.push(resolve(dataDir, '..'));
    const { out } = await restoreRun(backupPath, dataDir, primary.url);
    expect(out).toMatch(/tideline replica listening on/);
    const db = new Database(join(dataDir, 'tideline.db'), { readonly: true });
    try {
      expect(
        (db.prepare("SELECT count(*) AS n FROM docs WHERE collection = 'products'").get() as { n: number }).n,
      ).toBeGreaterThanOrEqual(10);
    } finally {
      db.close();
    }
    expect(readdirSync(dataDir).filter((f) => f.includes('.restore'))).toEqual([]);
  }, 40_000);
});
