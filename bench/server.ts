import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { z } from 'zod';
import { removeDir, TEST_ADMIN_TOKEN, TEST_SECRET, tempDataDir } from '../test/support/server-process';
import { readProcCpuMs, readProcMemory } from './rss';

/**
 * A real server process for one scenario: `node --import tsx server/main.ts`
 * on 127.0.0.1, a free port, a fresh temporary data directory and `--no-seed`.
 * A copy of test/support/server-process.ts that can also pass Node flags
 * (`--cpu-prof`) and reads the process's memory and CPU from /proc.
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

const adminStatusSchema = z.object({
  headLsn: z.number(),
  horizon: z.number(),
  logChanges: z.number(),
  connectedClients: z.number(),
});
export type AdminStatus = z.infer<typeof adminStatusSchema>;

export interface BenchServerOptions {
  /** Write a V8 CPU profile of the server to this directory when it exits. */
  cpuProfDir?: string | undefined;
  /** Extra server flags (after --no-seed). */
  args?: string[];
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
    '--data',
    dataDir,
    '--static',
    join(dataDir, 'no-static'),
    '--no-seed',
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, TIDELINE_SECRET: TEST_SECRET, TIDELINE_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server did not start:\n${out}`)),
        options.startTimeoutMs ?? 30_000,
      );
      const onData = (): void => {
        const m = /listening on (http:\/\/[^\s]+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}:\n${out}`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    removeDir(dataDir);
    throw err;
  }
  const pid = child.pid!;
  leftovers.set(pid, { kill: () => child.kill('SIGKILL'), dataDir });
  let stopped: Promise<number | null> | null = null;
  const server: BenchServer = {
    url,
    pid,
    dataDir,
    output: () => out,
    async adminStatus() {
      const res = await fetch(`${url}/admin/status`, { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
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
