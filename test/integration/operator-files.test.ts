import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listeningUrl, removeDir, tempDataDir } from '../support/server-process';

const ROOT = resolve(import.meta.dirname, '../..');
const SECRET_VARS = ['TIDELINE_SECRET', 'TIDELINE_ADMIN_TOKEN', 'TIDELINE_CLUSTER_SECRET'];

/** The environment without any Tideline secret, plus `extra`. */
function envWith(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const name of SECRET_VARS) if (!(name in extra)) delete env[name];
  return env;
}

/**
 * Starts `server/main.ts` under `umask 000`, so the modes checked below come
 * from the server and not from a careful umask.
 */
function spawnServer(dataDir: string, env: NodeJS.ProcessEnv) {
  const args = ['--import', 'tsx', 'server/main.ts', '--port', '0', '--data', dataDir, '--no-seed'];
  const command = `umask 000 && exec "${process.execPath}" ${args.map((a) => `'${a}'`).join(' ')}`;
  const child = spawn('/bin/sh', ['-c', command], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return { child, exited, output: () => out };
}

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);

describe('data directory, store, WAL, backups and secrets are private', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) removeDir(dir);
  });

  it('makes the data directory 0700 and every file in it 0600, whatever the umask', async () => {
    const parent = tempDataDir('tideline-modes-');
    dirs.push(parent);
    const dataDir = join(parent, 'data');
    const server = spawnServer(dataDir, envWith({}));
    try {
      const url = await listeningUrl(server.child, server.output, 30_000);
      const adminToken = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
      const res = await fetch(`${url}/admin/backup`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status, await res.clone().text()).toBe(200);
      const { path: backup } = (await res.json()) as { path: string };

      expect(mode(dataDir)).toBe('700');
      expect(mode(join(dataDir, 'backups'))).toBe('700');
      // The WAL and its index exist while the server runs.
      for (const file of [
        'tideline.db',
        'tideline.db-wal',
        'tideline.db-shm',
        'secret.key',
        'admin.token',
        'cluster.key',
      ]) {
        expect(mode(join(dataDir, file)), file).toBe('600');
      }
      expect(mode(backup)).toBe('600');
      // Secrets are written whole, through a temp file that is gone.
      expect(readdirSync(dataDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(readFileSync(join(dataDir, 'secret.key'), 'utf8').trim().length).toBeGreaterThanOrEqual(16);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  }, 60_000);

  it('tightens an existing data directory and store made with loose modes', async () => {
    const dataDir = tempDataDir('tideline-loose-');
    dirs.push(dataDir);
    const first = spawnServer(dataDir, envWith({}));
    await listeningUrl(first.child, first.output, 30_000);
    first.child.kill('SIGTERM');
    await first.exited;
    // As an older version (or a careless operator) left them.
    for (const file of ['tideline.db', 'secret.key']) chmodSync(join(dataDir, file), 0o644);
    chmodSync(dataDir, 0o755);
    const second = spawnServer(dataDir, envWith({}));
    try {
      await listeningUrl(second.child, second.output, 30_000);
      expect(mode(dataDir)).toBe('700');
      expect(second.output()).toMatch(/made the data directory .* 0700 \(it was 755\)/);
      expect(mode(join(dataDir, 'tideline.db'))).toBe('600');
      expect(mode(join(dataDir, 'tideline.db-wal'))).toBe('600');
      expect(mode(join(dataDir, 'secret.key'))).toBe('600');
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  }, 60_000);

  const badSecrets: Array<{ name: string; env: Record<string, string>; file?: [string, string]; says: RegExp }> = [
    { name: 'TIDELINE_SECRET of one space', env: { TIDELINE_SECRET: ' ' }, says: /TIDELINE_SECRET.*empty.*16/ },
    { name: 'a short TIDELINE_SECRET', env: { TIDELINE_SECRET: 'short' }, says: /TIDELINE_SECRET.*5 characters.*16/ },
    {
      name: 'an empty TIDELINE_ADMIN_TOKEN',
      env: { TIDELINE_SECRET: 'a-long-enough-secret-0123', TIDELINE_ADMIN_TOKEN: '' },
      says: /TIDELINE_ADMIN_TOKEN.*empty.*16/,
    },
    { name: 'an empty secret.key', env: {}, file: ['secret.key', ''], says: /secret\.key.*empty.*16/ },
    { name: 'a blank cluster.key', env: {}, file: ['cluster.key', '  \n'], says: /cluster\.key.*empty.*16/ },
  ];

  it.each(badSecrets)(
    'refuses to start with $name',
    async ({ env, file, says }) => {
      const dataDir = tempDataDir('tideline-badsecret-');
      dirs.push(dataDir);
      if (file) writeFileSync(join(dataDir, file[0]), file[1]);
      const server = spawnServer(dataDir, envWith(env));
      // A server that starts anyway is stopped at once, so the test fails fast and leaves nothing running.
      server.child.stdout.on('data', () => {
        if (/listening on/.test(server.output())) server.child.kill('SIGKILL');
      });
      const code = await server.exited;
      expect(code, server.output()).not.toBe(0);
      expect(server.output()).toMatch(says);
      expect(server.output()).not.toMatch(/listening on/);
      // Nothing was opened: no store made with a secret nobody should use.
      expect(existsSync(join(dataDir, 'tideline.db'))).toBe(false);
    },
    30_000,
  );
});
