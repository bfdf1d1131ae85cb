import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ServerProcess {
  url: string;
  dataDir: string;
  child: ChildProcess;
  /** Everything the process printed, for failure messages. */
  output(): string;
  /** SIGTERM, and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL (kill -9), and wait for exit. */
  kill9(): Promise<void>;
  /** GET or POST the admin API with the test admin token. */
  admin<T>(path: string, body?: unknown): Promise<T>;
}

export const TEST_SECRET = 'test-secret-0123456789';
export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';
export const TEST_CLUSTER_SECRET = 'test-cluster-secret-0123456789';

export function tempDataDir(prefix = 'tideline-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Starts `server/main.ts` as a real Node process (one process, so kill -9
 * hits the server itself) on 127.0.0.1 with a free port, and resolves once
 * it prints where it listens.
 */
export async function startServerProcess(
  options: { dataDir?: string; args?: string[]; port?: number; timeoutMs?: number } = {},
): Promise<ServerProcess> {
  const dataDir = options.dataDir ?? tempDataDir();
  const args = [
    '--import',
    'tsx',
    'server/main.ts',
    '--port',
    String(options.port ?? 0),
    '--data',
    dataDir,
    '--static',
    join(dataDir, 'no-static'),
    ...(options.args ?? ['--no-seed']),
  ];
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      TIDELINE_SECRET: TEST_SECRET,
      TIDELINE_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      TIDELINE_CLUSTER_SECRET: TEST_CLUSTER_SECRET,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await listeningUrl(child, () => out, options.timeoutMs ?? 30_000);
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return {
    url,
    dataDir,
    child,
    output: () => out,
    stop: () => stopWith('SIGTERM'),
    kill9: () => stopWith('SIGKILL'),
    async admin<T>(path: string, body?: unknown): Promise<T> {
      const res = await fetch(`${url}/admin${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (!res.ok) throw new Error(`admin ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    },
  };
}

/** Resolves with the URL a starting server process prints once it listens; rejects if it exits or times out first. */
export function listeningUrl(child: ChildProcess, output: () => string, timeoutMs: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output()}`)), timeoutMs);
    const onData = (): void => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(output());
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output()}`));
    });
  });
}
