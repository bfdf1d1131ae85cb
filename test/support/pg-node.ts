import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { listeningUrl, TEST_ADMIN_TOKEN, TEST_SECRET } from './server-process';

/**
 * A Tideline node on a PostgreSQL store as a real process: `node --import tsx
 * server/main.ts --store postgres://… --pg-schema S --node-id ID` (the demo
 * storefront schema, no seed) on 127.0.0.1 with a free port. One process, so
 * `kill9()` is a real kill -9 of the node. The same secrets on every node, as
 * docs/deploy.md asks.
 */
export interface PgNode {
  nodeId: string;
  url: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM, and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL (kill -9 of the pid), and wait for exit. */
  kill9(): Promise<void>;
}

export async function startPgNode(options: {
  storeUrl: string;
  pgSchema: string;
  nodeId: string;
  args?: string[];
  timeoutMs?: number;
}): Promise<PgNode> {
  const args = [
    '--import',
    'tsx',
    'server/main.ts',
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--store',
    options.storeUrl,
    '--pg-schema',
    options.pgSchema,
    '--node-id',
    options.nodeId,
    '--no-seed',
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      TIDELINE_SECRET: TEST_SECRET,
      TIDELINE_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      TIDELINE_STORE: undefined,
      TIDELINE_PG_SCHEMA: undefined,
      TIDELINE_NODE_ID: undefined,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  let url: string;
  try {
    url = await listeningUrl(child, () => out, options.timeoutMs ?? 30_000);
  } catch (err) {
    await stopWith('SIGKILL');
    throw err;
  }
  return {
    nodeId: options.nodeId,
    url,
    child,
    output: () => out,
    stop: () => stopWith('SIGTERM'),
    kill9: () => stopWith('SIGKILL'),
  };
}

/** Starts `n` nodes (`<prefix>-a`, `<prefix>-b`, …) on one PostgreSQL schema, one after the other. */
export async function startPgNodes(
  n: number,
  options: { storeUrl: string; pgSchema: string; prefix?: string; args?: string[] },
  into: PgNode[],
): Promise<PgNode[]> {
  const started: PgNode[] = [];
  for (let i = 0; i < n; i++) {
    const node = await startPgNode({
      storeUrl: options.storeUrl,
      pgSchema: options.pgSchema,
      nodeId: `${options.prefix ?? 'node'}-${String.fromCharCode(97 + i)}`,
      ...(options.args ? { args: options.args } : {}),
    });
    into.push(node);
    started.push(node);
  }
  return started;
}

/** Sends `POST /admin/mutate` to one node; throws unless it answered 200. */
export async function adminMutate(
  url: string,
  name: string,
  args: unknown,
  idempotencyKey: string,
): Promise<{ status: string; lsn?: number }> {
  const res = await fetch(`${url}/admin/mutate`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      'content-type': 'application/json',
      'idempotency-key': idempotencyKey,
    },
    body: JSON.stringify({ name, args }),
  });
  if (res.status !== 200) throw new Error(`admin mutate on ${url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as { status: string; lsn?: number };
}

/** One plain query on the test database (the shared log as PostgreSQL holds it). */
export async function pgQuery<R extends pg.QueryResultRow>(
  storeUrl: string,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: storeUrl });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}
