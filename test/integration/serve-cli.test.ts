import 'fake-indexeddb/auto';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../../client/lib/open';
import type { Tideline } from '../../client/lib/open';
import type { AppSchema } from '../../shared/schema/define-schema';
import { signToken } from '../../server/auth/tokens';
import { createServer } from '../../server/index';
import { loadSchemaModule } from '../../server/load-schema';
import {
  listeningUrl,
  removeDir,
  startServerProcess,
  TEST_ADMIN_TOKEN,
  TEST_CLUSTER_SECRET,
  TEST_SECRET,
  tempDataDir,
} from '../support/server-process';
import { waitFor } from '../support/wait';

const ROOT = resolve(import.meta.dirname, '../..');
/** The schema kit by absolute path, as an app outside the repo imports it until the package is built. */
const KIT = join(ROOT, 'shared/schema/define-schema.ts');

const ERRORS = join(ROOT, 'shared/errors.ts');

/**
 * An app mutator that the server refuses with its own error code: it throws
 * the schema kit's `TidelineError`, as an app imports it, not the server's.
 */
const ARCHIVE_MUTATOR = `{
  name: 'archive',
  args: { safeParse: (v) => ({ success: true, data: v }) },
  run: (tx, args, ctx) => {
    if (ctx.side === 'server') throw new TidelineError('NOT_FOUND', 'nothing of ' + ctx.userId + ' to archive on the server');
  },
}`;

/** A todo app's schema module; `extra` adds collections, `indexes` sets the todos' indexed fields. */
function todoSchemaSource(options: { version: number; extra?: string[]; indexes?: string[]; js?: boolean }): string {
  const collections = [
    `todos: { read: 'public', write: 'any', indexes: ${JSON.stringify(options.indexes ?? ['done'])} }`,
    ...(options.extra ?? []).map((name) => `${name}: { read: 'public', write: 'any', indexes: [] }`),
  ];
  const imports = [
    `import { defineSchema } from ${JSON.stringify(KIT)};`,
    `import { TidelineError } from ${JSON.stringify(ERRORS)};`,
  ].join('\n');
  const body = `defineSchema({ name: 'todo', version: ${options.version}, collections: { ${collections.join(', ')} }, mutators: { archive: ${ARCHIVE_MUTATOR} } })`;
  return options.js
    ? `${imports}\nexport const schema = ${body};\n`
    : `${imports}\nconst schema = ${body};\nexport default schema;\n`;
}

interface CliRun {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function runCli(args: string[]): CliRun {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'server/cli.ts'), ...args], {
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
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return { child, output: () => out, exited };
}

/** The exit code of a run that should end by itself; one still running after `ms` is killed and fails the test. */
async function exitCode(run: CliRun, ms = 30_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still running'>((ok) => (timer = setTimeout(() => ok('still running'), ms)));
  const result = await Promise.race([run.exited, late]);
  clearTimeout(timer);
  if (result === 'still running') {
    run.child.kill('SIGKILL');
    await run.exited;
    throw new Error(`tideline did not exit within ${ms} ms:\n${run.output()}`);
  }
  return result;
}

interface Served extends CliRun {
  url: string;
  stop(): Promise<void>;
}

async function serve(schemaFile: string, dataDir: string, extra: string[] = []): Promise<Served> {
  const run = runCli(['serve', '--schema', schemaFile, '--data', dataDir, '--port', '0', ...extra]);
  const url = await listeningUrl(run.child, run.output, 30_000);
  return {
    ...run,
    url,
    async stop() {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGTERM');
      await run.exited;
    },
  };
}

let dbCounter = 0;
function client(schema: AppSchema, url: string, user: string): Promise<Tideline<AppSchema>> {
  return open(schema, {
    servers: [url],
    token: signToken(TEST_SECRET, { sub: user }, Date.now()),
    dbName: `serve-cli-${process.pid}-${++dbCounter}`,
    requestTimeoutMs: 5_000,
  });
}

async function status(url: string): Promise<{ headLsn: number; horizon: number }> {
  const res = await fetch(`${url}/admin/status`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  return (await res.json()) as { headLsn: number; horizon: number };
}

/** Writes one todo on a client, and waits until another, new client has it from the server. */
async function syncOneTodo(schema: AppSchema, url: string, id: string): Promise<void> {
  const a = await client(schema, url, 'alice');
  const b = await client(schema, url, 'bob');
  try {
    await a.mutate.put({ collection: 'todos', doc: { id, title: `todo ${id}`, done: 0 } });
    await waitFor(`bob has ${id}`, async () => (await b.collection('todos').get(id)) !== undefined);
    await waitFor('alice has no pending', () => a.status().pending === 0);
    expect(await b.collection('todos').get(id)).toEqual({ id, title: `todo ${id}`, done: 0 });
  } finally {
    a.close();
    b.close();
  }
}

/** Files under `dir` this process holds open (Linux: /proc/self/fd). */
function openFilesUnder(dir: string): string[] {
  const fds = readdirSync('/proc/self/fd');
  const targets = fds.map((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return ''; // closed while we looked (the readdir's own fd)
    }
  });
  const root = realpathSync(dir);
  return targets.filter((t) => t.startsWith(root));
}

/** A port that was just free: taking it proves nothing listens there. */
async function canListenOn(port: number): Promise<boolean> {
  const probe = createNetServer();
  return new Promise<boolean>((ok) => {
    probe.once('error', () => ok(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => ok(true)));
  });
}

describe('tideline serve: your schema on the server', () => {
  const dirs: string[] = [];
  const running: Served[] = [];
  /** A folder for an app: an ES module package, as Tideline's schema modules must be. */
  const temp = (): string => {
    const dir = tempDataDir('tideline-serve-');
    dirs.push(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    return dir;
  };
  afterAll(async () => {
    for (const s of running) await s.stop();
    for (const dir of dirs) removeDir(dir);
  });

  it('tideline --help prints the usage; serve without --schema is a usage error', async () => {
    const help = runCli(['--help']);
    expect(await exitCode(help)).toBe(0);
    expect(help.output()).toContain('tideline serve --schema ./schema.ts --data ./data --port 3000');
    const bad = runCli(['serve', '--port', '0']);
    expect(await exitCode(bad)).toBe(2);
    expect(bad.output()).toContain('serve needs --schema FILE');
  });

  it('serves a .ts schema module with no demo data and no dev login; a client syncs a document', async () => {
    const dir = temp();
    const file = join(dir, 'schema.ts');
    writeFileSync(file, todoSchemaSource({ version: 1 }));
    const server = await serve(file, join(dir, 'data'));
    running.push(server);
    expect(server.output()).toContain("schema 'todo' version 1");
    // A custom schema gets nothing planted: the log is empty before the first write.
    expect((await status(server.url)).headLsn).toBe(0);
    const login = await fetch(`${server.url}/auth/dev-login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'mallory' }),
    });
    expect(login.status).toBe(404);
    const schema = await loadSchemaModule(file);
    await syncOneTodo(schema, server.url, 't1');
    expect((await status(server.url)).headLsn).toBe(1);

    // The app's TidelineError is the server's: the client gets the mutator's own code, not a generic failure.
    const archiver = await client(schema, server.url, 'erin');
    await archiver.mutate['archive']!({ id: 't1' });
    await waitFor('the archive is refused', async () => (await archiver.rejections()).length === 1);
    expect((await archiver.rejections())[0]?.error).toEqual({
      code: 'NOT_FOUND',
      message: 'nothing of erin to archive on the server',
      retryable: false,
    });
    archiver.close();
    await server.stop();
  });

  it('serves a .js schema module (a named `schema` export), with --dev-login', async () => {
    const dir = temp();
    const file = join(dir, 'schema.js');
    writeFileSync(file, todoSchemaSource({ version: 1, js: true }));
    const server = await serve(file, join(dir, 'data'), ['--dev-login']);
    running.push(server);
    // The dev login is there when asked for, with its warning.
    expect(server.output()).toContain('WARNING: the development login is on');
    const login = await fetch(`${server.url}/auth/dev-login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'dana' }),
    });
    expect(login.status).toBe(200);
    await syncOneTodo(await loadSchemaModule(file), server.url, 'j1');
    await server.stop();
  });

  it('a module that exports no schema, or would load as CommonJS, is refused with a clear message', async () => {
    const dir = temp();
    const file = join(dir, 'schema.ts');
    writeFileSync(file, 'export const answer = 42;\n');
    const run = runCli(['serve', '--schema', file, '--data', join(dir, 'data'), '--port', '0']);
    expect(await exitCode(run)).toBe(1);
    expect(run.output()).toContain(`${file} exports no schema`);

    // No "type": "module": the app's schema kit would be a CommonJS copy, its TidelineError not the server's.
    const cjs = join(dir, 'cjs');
    mkdirSync(cjs);
    writeFileSync(join(cjs, 'package.json'), JSON.stringify({ type: 'commonjs' }));
    writeFileSync(join(cjs, 'schema.ts'), todoSchemaSource({ version: 1 }));
    const refused = runCli(['serve', '--schema', join(cjs, 'schema.ts'), '--data', join(dir, 'data'), '--port', '0']);
    expect(await exitCode(refused)).toBe(1);
    expect(refused.output()).toContain(
      `schema module ${join(cjs, 'schema.ts')} would load as CommonJS: ${join(cjs, 'package.json')} does not say "type": "module"`,
    );
    expect(refused.output()).toContain('add "type": "module" to your package.json, or name the file schema.mts');
  });

  it('documents of a collection the schema dropped: refuse to start, then --drop-unknown-collections', async () => {
    const dir = temp();
    const data = join(dir, 'data');
    const v1 = join(dir, 'schema-v1.ts');
    const v2 = join(dir, 'schema-v2.ts');
    writeFileSync(v1, todoSchemaSource({ version: 1, extra: ['tags'] }));
    writeFileSync(v2, todoSchemaSource({ version: 2, indexes: ['title'] }));

    const first = await serve(v1, data);
    running.push(first);
    const schema1 = await loadSchemaModule(v1);
    const writer = await client(schema1, first.url, 'alice');
    await writer.mutate.put({ collection: 'todos', doc: { id: 'keep', title: 'keep me', done: 0 } });
    for (const id of ['red', 'green']) await writer.mutate.put({ collection: 'tags', doc: { id } });
    await writer.mutate.delete({ collection: 'tags', id: 'green' });
    await waitFor('all acked', () => writer.status().pending === 0);
    writer.close();
    await first.stop();

    const refused = runCli(['serve', '--schema', v2, '--data', data, '--port', '0']);
    expect(await exitCode(refused)).toBe(1);
    expect(refused.output()).toContain(
      "the data directory holds documents of collections that schema 'todo' (version 2) does not define: 'tags' (1 document, 1 deleted not yet compacted)",
    );
    expect(refused.output()).toContain('--drop-unknown-collections');

    const dropping = await serve(v2, data, ['--drop-unknown-collections']);
    running.push(dropping);
    const out = dropping.output();
    expect(out).toContain("dropped collections not in schema 'todo': 'tags' (1 document, 1 deleted not yet compacted)");
    expect(out).toContain('dropped the index on todos.done (no longer in the schema)');
    expect(out).toContain('created an index on todos.title');
    expect(out).toContain("schema changed: this data directory was served with 'todo' version 1, now 'todo' version 2");
    // Four writes and one tombstone, all compacted: a client can never be sent a change of `tags`.
    expect(await status(dropping.url)).toMatchObject({ headLsn: 5, horizon: 5 });
    const schema2 = await loadSchemaModule(v2);
    const reader = await client(schema2, dropping.url, 'bob');
    await waitFor('bob has the kept todo', async () => (await reader.collection('todos').get('keep')) !== undefined);
    reader.close();
    await syncOneTodo(schema2, dropping.url, 'after');
    await dropping.stop();

    // The way forward is taken once: the next start needs no flag.
    const again = await serve(v2, data);
    running.push(again);
    expect(again.output()).not.toContain('dropped');
    await again.stop();
  });

  it('a replica keeps its data until its primary drops the collection, then catches up from a snapshot', async () => {
    const dir = temp();
    const v1 = join(dir, 'schema-v1.ts');
    const v2 = join(dir, 'schema-v2.ts');
    writeFileSync(v1, todoSchemaSource({ version: 1, extra: ['tags'] }));
    writeFileSync(v2, todoSchemaSource({ version: 2 }));
    const [primaryData, replicaData] = [join(dir, 'primary'), join(dir, 'replica')];

    const primary = await serve(v1, primaryData);
    running.push(primary);
    const replica = await serve(v1, replicaData, ['--primary', primary.url]);
    running.push(replica);
    const writer = await client(await loadSchemaModule(v1), primary.url, 'alice');
    await writer.mutate.put({ collection: 'todos', doc: { id: 'keep', title: 'keep me', done: 0 } });
    await writer.mutate.put({ collection: 'tags', doc: { id: 'red' } });
    await waitFor('acked', () => writer.status().pending === 0);
    writer.close();
    await waitFor('replica caught up', async () => (await status(replica.url)).headLsn === 2);
    await replica.stop();
    await primary.stop();

    // The primary drops; a replica given the flag only notes it and follows.
    const newPrimary = await serve(v2, primaryData, ['--drop-unknown-collections']);
    running.push(newPrimary);
    const follower = await serve(v2, replicaData, ['--primary', newPrimary.url, '--drop-unknown-collections']);
    running.push(follower);
    expect(follower.output()).toContain(
      "collections not in the schema ('tags' (1 document)) are left to the primary to drop; this replica catches up from it",
    );
    await waitFor('replica took the snapshot', async () => (await status(follower.url)).horizon === 3);
    await follower.stop();
    // Its data now fits the schema: it starts without the flag.
    const plain = await serve(v2, replicaData, ['--primary', newPrimary.url]);
    running.push(plain);
    expect(plain.output()).not.toContain('tags');
    await plain.stop();
    await newPrimary.stop();
  });

  it('createServer in-process: a client syncs, close() frees the port, a refused start (data, port) holds nothing open', async () => {
    const dir = temp();
    const file = join(dir, 'schema.ts');
    writeFileSync(file, todoSchemaSource({ version: 1, extra: ['tags'] }));
    const schema = await loadSchemaModule(file);
    const lines: string[] = [];
    const server = await createServer({
      schema,
      dataDir: join(dir, 'data'),
      port: 0,
      auth: { secret: TEST_SECRET },
      adminToken: TEST_ADMIN_TOKEN,
      log: (line) => lines.push(line),
    });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(server.role()).toBe('primary');
    expect(lines).toEqual(["serving schema 'todo' version 1"]);
    await syncOneTodo(schema, server.url, 'p1');
    const tagger = await client(schema, server.url, 'carol');
    await tagger.mutate.put({ collection: 'tags', doc: { id: 'blue' } });
    await waitFor('tag acked', () => tagger.status().pending === 0);
    tagger.close();
    await server.close();
    expect(await canListenOn(server.port)).toBe(true);

    writeFileSync(join(dir, 'narrow.ts'), todoSchemaSource({ version: 2 }));
    const narrower = await loadSchemaModule(join(dir, 'narrow.ts'));
    await expect(
      createServer({ schema: narrower, dataDir: join(dir, 'data'), port: server.port, log: () => {} }),
    ).rejects.toThrow("does not define: 'tags' (1 document)");
    expect(openFilesUnder(join(dir, 'data'))).toEqual([]);
    // The refused start held nothing open: the same port and data directory start now.
    const after = await createServer({
      schema: narrower,
      dataDir: join(dir, 'data'),
      port: server.port,
      dropUnknownCollections: true,
      log: () => {},
    });
    expect(after.port).toBe(server.port);

    await after.close();

    // A taken port rejects too, and leaves nothing of the data directory open.
    const squatter = createNetServer();
    await new Promise<void>((ok) => squatter.listen(after.port, '127.0.0.1', ok));
    try {
      await expect(
        createServer({ schema: narrower, dataDir: join(dir, 'data'), port: after.port, log: () => {} }),
      ).rejects.toThrow('EADDRINUSE');
      expect(openFilesUnder(join(dir, 'data'))).toEqual([]);
    } finally {
      await new Promise<void>((ok) => squatter.close(() => ok()));
    }
  });

  it("createServer's mutate and query: backend writes reach clients, exactly once per key, as a user or SYSTEM", async () => {
    const dir = temp();
    const file = join(dir, 'schema.ts');
    writeFileSync(file, todoSchemaSource({ version: 1 }));
    const schema = await loadSchemaModule(file);
    const server = await createServer({
      schema,
      dataDir: join(dir, 'data'),
      port: 0,
      auth: { secret: TEST_SECRET },
      log: () => {},
    });
    const watcher = await client(schema, server.url, 'frank');
    try {
      const todo = (id: string): { collection: string; doc: { id: string; title: string; done: number } } => ({
        collection: 'todos',
        doc: { id, title: `backend ${id}`, done: 0 },
      });
      expect(await server.mutate('put', todo('b1'))).toEqual({ status: 'applied', lsn: 1 });
      await waitFor('the client has b1', async () => (await watcher.collection('todos').get('b1')) !== undefined);

      const keyed = { idempotencyKey: 'order-42' };
      expect(await server.mutate('put', todo('b2'), keyed)).toEqual({ status: 'applied', lsn: 2 });
      expect(await server.mutate('put', todo('b2'), keyed)).toMatchObject({ status: 'duplicate' });
      expect(await server.mutate('archive', { id: 'b1' }, { as: { userId: 'eve', roles: [] } })).toEqual({
        status: 'rejected',
        error: { code: 'NOT_FOUND', message: 'nothing of eve to archive on the server', retryable: false },
      });

      const first = await server.query('todos', { filter: 'done:eq:0', limit: 1 });
      expect(first.docs.map((d) => d.id)).toEqual(['b1']);
      const second = await server.query('todos', { filter: 'done:eq:0', limit: 1, cursor: first.nextCursor ?? '' });
      expect(second).toMatchObject({ docs: [{ id: 'b2' }], nextCursor: null });
      await expect(server.query('nope')).rejects.toThrow("unknown collection 'nope'");
    } finally {
      watcher.close();
      await server.close();
    }
  });

  it('the demo (server/main.ts) still seeds the storefront into a new data directory', async () => {
    const demo = await startServerProcess({ args: [] });
    try {
      expect((await fetch(`${demo.url}/healthz`)).ok).toBe(true);
      const { headLsn } = await demo.admin<{ headLsn: number }>('/status');
      expect(headLsn).toBe(2001);
    } finally {
      await demo.stop();
      removeDir(demo.dataDir);
    }
  });
});
