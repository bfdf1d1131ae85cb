import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { z } from 'zod';
import {
  listeningUrl,
  removeDir,
  TEST_ADMIN_TOKEN,
  TEST_CLUSTER_SECRET,
  TEST_SECRET,
  tempDataDir,
} from '../test/support/server-process';
import { readProcCpuMs, readProcMemory } from './rss';

/**
 * A real server process for one scenario: `node --import tsx server/main.ts`
 * on 127.0.0.1, a free port, a fresh temporary data directory and `--no-seed`.
 * A copy of test/support/server-process.ts that can also pass Node flags
 * (`--cpu-prof`) and reads the process's memory and CPU from /proc. Every
 * server gets the same client, admin and cluster secrets, so one started with
 * `args: ['--primary', url]` follows another as a replica.
 */
export interface BenchServer {
  url: string;
  pid: number;
  dataDir: string;
  output(): string;
  adminStatus(): Promise<AdminStatus>;
  /** Peak RSS (VmHWM) so far, in KiB; null when /proc is unavailable. */
  peakRssKb(): number | null;
  /** CPU time used so far (user + system), in ms; null when /proc is unavailable. */
  cpuMs(): number | null;
  /** SIGTERM, wait for exit (SIGKILL after a grace period), remove the data directory. Returns the peak RSS read just before. */
  stop(): Promise<number | null>;
}

const replicaInfoSchema = z.object({
  replicaId: z.string(),
  connected: z.boolean(),
  live: z.boolean(),
  appliedLsn: z.number(),
  lagLsn: z.number(),
  lagMs: z.number(),
});
export type ReplicaInfo = z.infer<typeof replicaInfoSchema>;

const adminStatusSchema = z.object({
  role: z.string().optional(),
  headLsn: z.number(),
  horizon: z.number(),
  logChanges: z.number(),
  connectedClients: z.number(),
  /** On a primary: what it knows of each replica (servers before replication lack it). */
  replicas: z.array(replicaInfoSchema).optional(),
  minSyncReplicas: z
    .object({ required: z.number(), caughtUp: z.number(), met: z.boolean(), waitingCommits: z.number().optional() })
    .optional(),
});
export type AdminStatus = z.infer<typeof adminStatusSchema>;

export interface BenchServerOptions {
  /** Write a V8 CPU profile of the server to this directory when it exits. */
  cpuProfDir?: string | undefined;
  /** Extra server flags (after --no-seed). */
  args?: string[];
  /**
   * A node on a PostgreSQL store instead of SQLite: `--store url --pg-schema schema --node-id nodeId`, no
   * `--data` (a PostgreSQL node keeps no files; its data directory here stays empty and is removed at stop).
   */
  pg?: { url: string; schema: string; nodeId: string };
  startTimeoutMs?: number;
}

const running = new Set<BenchServer>();
/** Children and data directories not yet cleaned up, for the exit hook. */
const leftovers = new Map<number, { kill: () => void; dataDir: string }>();

// Whatever ends the bench (a crash, Ctrl-C, process.exit), no server outlives it.
process.once('exit', () => {
  for (const { kill, dataDir } of leftovers.values()) {
    kill();
    removeDir(dataDir);
  }
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`bench: ${signal}, stopping servers`);
    process.exit(130);
  });
}

/** Stops every server still running (the bench's last resort on a hard timeout, and before it exits). */
export async function stopAllBenchServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}

export async function startBenchServer(options: BenchServerOptions = {}): Promise<BenchServer> {
  const dataDir = tempDataDir('tideline-bench-');
  const nodeArgs = options.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir] : [];
  const args = [
    ...nodeArgs,
    '--import',
    'tsx',
    'server/main.ts',
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    ...(options.pg
      ? ['--store', options.pg.url, '--pg-schema', options.pg.schema, '--node-id', options.pg.nodeId]
      : ['--data', dataDir]),
    '--static',
    join(dataDir, 'no-static'),
    '--no-seed',
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    // The same secrets on every node, so a replica can follow a primary (the cluster secret authenticates /replication).
    env: {
      ...process.env,
      TIDELINE_SECRET: TEST_SECRET,
      TIDELINE_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      TIDELINE_CLUSTER_SECRET: TEST_CLUSTER_SECRET,
      // The store is the scenario's choice (`pg`), never the shell's.
      TIDELINE_STORE: undefined,
      TIDELINE_PG_SCHEMA: undefined,
      TIDELINE_NODE_ID: undefined,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Known to the exit hook from the start: a bench that ends while this server is still starting must not leave it behind.
  const pid = child.pid;
  if (pid !== undefined) leftovers.set(pid, { kill: () => child.kill('SIGKILL'), dataDir });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let url: string;
  try {
    url = await listeningUrl(child, () => out, options.startTimeoutMs ?? 30_000);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    if (pid !== undefined) leftovers.delete(pid);
    removeDir(dataDir);
    throw err;
  }
  if (pid === undefined) throw new Error('server process has no pid');
  let stopped: Promise<number | null> | null = null;
  const server: BenchServer = {
    url,
    pid,
    dataDir,
    output: () => out,
    async adminStatus() {
      const res = await fetch(`${url}/admin/status`, {
        headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`GET /admin/status: ${res.status}`);
      return adminStatusSchema.parse(await res.json());
    },
    peakRssKb: () => readProcMemory(pid)?.vmHWMKb ?? null,
    cpuMs: () => readProcCpuMs(pid),
    stop() {
      stopped ??= (async () => {
        const peak = readProcMemory(pid)?.vmHWMKb ?? null;
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const grace = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(grace);
        running.delete(server);
        leftovers.delete(pid);
        removeDir(dataDir);
        return peak;
      })();
      return stopped;
    },
  };
  running.add(server);
  return server;
}
