import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { listeningUrl, removeDir, TEST_ADMIN_TOKEN, TEST_SECRET, tempDataDir } from '../../test/support/server-process';

/** Rate limits off: the bench measures the write path, not the flood bounds (1,000 mutations/s per user by default). */
export const RATE_LIMITS_OFF = [
  '--rate-user-mutations',
  '0',
  '--rate-conn-mutations',
  '0',
  '--rate-user-bytes',
  '0',
  '--rate-conn-bytes',
  '0',
];

const SCHEMA = fileURLToPath(new URL('./schema.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));

const adminStatusSchema = z.object({ headLsn: z.number(), connectedClients: z.number() });

export interface PageServer {
  /** `http://127.0.0.1:PORT`, serving the bench page and the sync endpoint. */
  url: string;
  connectedClients(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * `tideline serve --schema bench/browser/schema.ts` as a real process on
 * 127.0.0.1 (a free port, a fresh data directory), serving `staticDir`, with
 * the test secrets (tokens come from `tokenFor`) and the rate limits off.
 */
export async function startPageServer(staticDir: string): Promise<PageServer> {
  const dataDir = tempDataDir('tideline-bench-browser-');
  const args = ['--import', 'tsx', 'server/cli.ts', 'serve', '--schema', SCHEMA, '--host', '127.0.0.1'];
  args.push('--port', '0', '--data', dataDir, '--static', staticDir, ...RATE_LIMITS_OFF);
  const child = spawn(process.execPath, args, {
    cwd: REPO,
    env: { ...process.env, TIDELINE_SECRET: TEST_SECRET, TIDELINE_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = (): void => {
    child.kill('SIGKILL');
    removeDir(dataDir);
  };
  // Whatever ends the bench, the server does not outlive it.
  process.once('exit', kill);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let url: string;
  try {
    url = await listeningUrl(child, () => out, 30_000);
  } catch (err) {
    kill();
    throw err;
  }
  return {
    url,
    async connectedClients() {
      const res = await fetch(`${url}/admin/status`, {
        headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`GET /admin/status: ${res.status}`);
      return adminStatusSchema.parse(await res.json()).connectedClients;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const grace = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(grace);
      process.removeListener('exit', kill);
      removeDir(dataDir);
    },
  };
}
