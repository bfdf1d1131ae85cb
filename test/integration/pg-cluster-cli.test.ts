import 'fake-indexeddb/auto';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../../client/lib/open';
import { signToken } from '../../server/auth/tokens';
import { loadSchemaModule } from '../../server/load-schema';
import { createTestDatabase } from '../../server/store/pg-test-db';
import type { TestDatabase } from '../../server/store/pg-test-db';
import { listeningUrl, removeDir, TEST_ADMIN_TOKEN, TEST_SECRET, tempDataDir } from '../support/server-process';
import { waitFor } from '../support/wait';

/*
 * Two `tideline serve --store postgres://…` processes on one fresh database,
 * as the README's "Scale out on PostgreSQL" starts them: a write through one
 * node's admin API is read through the other's /query and reaches a client of
 * the other node; both nodes are in either node's status; a node stopped
 * cleanly leaves the registry.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const KIT = join(ROOT, 'shared/schema/define-schema.ts');
const SCHEMA_SOURCE = `import { defineSchema } from ${JSON.stringify(KIT)};
export default defineSchema({
  name: 'todo',
  version: 1,
  collections: { todos: { read: 'public', write: 'any', indexes: ['done'] } },
  mutators: {},
});
`;

interface Node {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Omit<Node, 'url' | 'stop'> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'server/cli.ts'), ...args], {
    env: { ...process.env, TIDELINE_SECRET: undefined, TIDELINE_ADMIN_TOKEN: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return { child, output: () => out, exited };
}

const SECRETS = { TIDELINE_SECRET: TEST_SECRET, TIDELINE_ADMIN_TOKEN: TEST_ADMIN_TOKEN };

async function admin<T>(url: string, path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      'content-type': 'application/json',
      ...(init.headers as Record<string, string> | undefined),
    },
  });
  return { status: res.status, body: (await res.json()) as T };
}

interface PgStatus {
  store: string;
  nodeId: string;
  headLsn: number;
  connectedClients: number;
  cluster: { nodes: Array<{ nodeId: string; url: string; sessions: number; seenAt: number }>; sessions: number };
}

describe('two tideline nodes on one PostgreSQL database', () => {
  let db: TestDatabase;
  let dir: string;
  let schemaFile: string;
  const nodes: Node[] = [];

  async function serve(nodeId: string): Promise<Node> {
    const run = runCli(
      [
        'serve',
        '--schema',
        schemaFile,
        '--store',
        db.url,
        '--pg-schema',
        'tideline',
        '--port',
        '0',
        '--node-id',
        nodeId,
      ],
      SECRETS,
    );
    const node: Node = {
      ...run,
      url: '',
      async stop() {
        if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGTERM');
        await run.exited;
      },
    };
    nodes.push(node);
    node.url = await listeningUrl(run.child, run.output, 30_000);
    return node;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = tempDataDir('tideline-pg-cli-');
    schemaFile = join(dir, 'schema.ts');
    writeFileSync(schemaFile, SCHEMA_SOURCE);
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  });
  afterAll(async () => {
    for (const n of nodes) {
      if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
      await n.exited;
    }
    removeDir(dir);
    await db.drop();
  });

  it('serve a write made on node a from node b, list each other, and a stopped node leaves', async () => {
    const a = await serve('node-a');
    const b = await serve('node-b');
    expect(a.output()).toMatch(/store postgres:\/\/.*schema tideline/);

    // Both nodes in either node's status.
    for (const node of [a, b]) {
      await waitFor(
        `${node.url} lists both nodes`,
        async () => {
          const { body } = await admin<PgStatus>(node.url, '/admin/status');
          return body.cluster.nodes.map((n) => n.nodeId).join() === 'node-a,node-b';
        },
        15_000,
      );
    }
    const { body: status } = await admin<PgStatus>(b.url, '/admin/status');
    expect(status).toMatchObject({ store: 'postgres', nodeId: 'node-b' });
    expect(status.cluster.nodes.map((n) => n.url)).toEqual([a.url, b.url]);

    // A client of node b, and a write through node a's admin API.
    const schema = await loadSchemaModule(schemaFile);
    const client = await open(schema, {
      servers: [b.url],
      token: signToken(TEST_SECRET, { sub: 'bob' }, Date.now()),
      dbName: `pg-cli-${process.pid}`,
      requestTimeoutMs: 5_000,
    });
    try {
      // Live on node b before the write, so the change comes by node b's tail of the shared log, not by catch-up.
      await waitFor('bob is live on node b', () => client.status().state === 'live', 15_000);
      const put = await admin<{ status: string; lsn: number }>(a.url, '/admin/mutate', {
        method: 'POST',
        headers: { 'idempotency-key': 'first-todo' },
        body: JSON.stringify({
          name: 'put',
          args: { collection: 'todos', doc: { id: 't1', title: 'Milk', done: 0 } },
        }),
      });
      expect(put).toMatchObject({ status: 200, body: { status: 'applied' } });
      // Read your writes on the other node, at once: the head is shared.
      const read = await admin<{ headLsn: number; docs: Array<{ id: string }> }>(
        b.url,
        `/query/todos?filter=done:eq:0&minLsn=${put.body.lsn}&waitMs=0`,
      );
      expect(read.status).toBe(200);
      expect(read.body.docs.map((d) => d.id)).toEqual(['t1']);
      expect(read.body.headLsn).toBeGreaterThanOrEqual(put.body.lsn);
      // The live path across nodes: node a's commit reaches node b's client.
      await waitFor('bob has t1 from node b', async () => (await client.collection('todos').get('t1')) !== undefined);
      await waitFor(
        'the registry counts bob on node b',
        async () => (await admin<PgStatus>(a.url, '/admin/status')).body.cluster.sessions === 1,
        10_000,
      );
    } finally {
      client.close();
    }

    // What a PostgreSQL node leaves to PostgreSQL, and its health check.
    const backup = await admin<{ error: { code: string; message: string } }>(a.url, '/admin/backup', {
      method: 'POST',
      body: '{}',
    });
    expect(backup.status).toBe(404);
    expect(backup.body.error.message).toMatch(/pg_dump/);
    expect(await (await fetch(`${a.url}/healthz`)).json()).toMatchObject({ ok: true, store: 'postgres' });

    // A clean stop leaves the registry at once (not after the 10 s staleness).
    await a.stop();
    const { body: after } = await admin<PgStatus>(b.url, '/admin/status');
    expect(after.cluster.nodes.map((n) => n.nodeId)).toEqual(['node-b']);
  }, 90_000);

  it('refuse to start without the shared secrets or with replica flags, with a usage error', async () => {
    const noSecrets = runCli(['serve', '--schema', schemaFile, '--store', db.url, '--port', '0'], {});
    expect(await noSecrets.exited).toBe(2);
    expect(noSecrets.output()).toMatch(/needs TIDELINE_SECRET \(or --auth-jwks-url\) and TIDELINE_ADMIN_TOKEN/);
    const replica = runCli(
      ['serve', '--schema', schemaFile, '--store', db.url, '--port', '0', '--primary', 'http://127.0.0.1:1'],
      SECRETS,
    );
    expect(await replica.exited).toBe(2);
    expect(replica.output()).toMatch(/--primary cannot be used with a PostgreSQL store/);
  }, 30_000);
});
