import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listeningUrl, removeDir, tempDataDir } from '../support/server-process';
import { waitFor } from '../support/wait';

const ROOT = resolve(import.meta.dirname, '../..');
const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> })
  .scripts;

/**
 * The server command of an npm script, as argv: for `start`, the part after
 * the web app build (`vite build ... && <server>`). Read from package.json, so
 * a script reverted to the `tsx` CLI (which runs the server in a child
 * process) fails this test.
 */
function serverCommand(script: string): string[] {
  const line = scripts[script];
  if (line === undefined) throw new Error(`package.json has no "${script}" script`);
  const last = line.split('&&').at(-1)!.trim();
  expect(last, `the "${script}" script's server command`).not.toMatch(/[|;<>$`'"]/);
  return last.split(/\s+/);
}

/** A port nothing listens on (just released by the OS). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

async function refusesConnections(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(500) });
    return false;
  } catch {
    return true;
  }
}

describe('kill -9 of the process an npm script starts stops the server', () => {
  const dirs: string[] = [];
  const groups: ChildProcess[] = [];
  afterAll(() => {
    // Whatever a reverted script left behind (the tsx CLI's orphaned child) dies with its process group.
    for (const child of groups) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // The group is already gone.
      }
    }
    for (const dir of dirs) removeDir(dir);
  });

  const cases: Array<{ script: string; extra: () => Promise<string[]> }> = [
    { script: 'start', extra: () => Promise.resolve([]) },
    { script: 'dev', extra: () => Promise.resolve([]) },
    { script: 'replica', extra: async () => ['--primary', `http://127.0.0.1:${await closedPort()}`] },
  ];

  it.each(cases)(
    'npm run $script',
    async ({ script, extra }) => {
      const [command, ...args] = serverCommand(script);
      const dataDir = tempDataDir(`tideline-cli-${script}-`);
      dirs.push(dataDir);
      // As npm runs a script: node_modules/.bin on the PATH, `node` is this Node.
      const child = spawn(
        command === 'node' ? process.execPath : command!,
        [
          ...args,
          '--port',
          '0',
          '--data',
          dataDir,
          '--no-seed',
          '--static',
          join(dataDir, 'no-static'),
          ...(await extra()),
        ],
        {
          cwd: ROOT,
          env: {
            ...process.env,
            PATH: `${join(ROOT, 'node_modules', '.bin')}${delimiter}${process.env['PATH'] ?? ''}`,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
          // Its own process group, so the test can clean up after a child that outlives its parent.
          detached: true,
        },
      );
      groups.push(child);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const url = await listeningUrl(child, () => out, 20_000);
      expect(await refusesConnections(url)).toBe(false);

      const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
      process.kill(child.pid!, 'SIGKILL');
      await exited;
      await waitFor(
        `${url} to refuse connections after kill -9 of pid ${child.pid}`,
        () => refusesConnections(url),
        5000,
      );
    },
    40_000,
  );
});
