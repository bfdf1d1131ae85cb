import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../server/store/pg-test-db';
import { listeningUrl } from '../support/server-process';
import { waitFor } from '../support/wait';
import { docFiles } from './doc-files';
import { run, start } from './processes';
import type { Running } from './processes';

/**
 * Tideline as an app developer meets it (issue 8, item 7): `npm pack`, a
 * fresh project under the system temp directory made of the files of
 * docs/getting-started.md, `npm install` of the tarball and the peer
 * dependencies, then type-check, serve, sync and bundle that project.
 */

const repo = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'consumer-test-secret-0123456789';
const ADMIN_TOKEN = 'consumer-test-admin-token-0123456789';

/** The versions this checkout installed, so `npm install` finds them all in the npm cache. */
function installed(name: string): string {
  const manifest = JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')) as {
    version: string;
  };
  return `${name}@${manifest.version}`;
}

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: { path: string }[];
}

/** The packages a module of lib/ imports, itself or through lib/'s other modules (static imports and re-exports). */
function packagesReachedFrom(file: string, seen = new Set<string>()): Set<string> {
  const packages = new Set<string>();
  if (seen.has(file)) return packages;
  seen.add(file);
  for (const m of readFileSync(file, 'utf8').matchAll(
    /^(?:import|export)\b[^'"]*?from ['"]([^'"]+)['"]|^import ['"]([^'"]+)['"]/gm,
  )) {
    const specifier = (m[1] ?? m[2])!;
    if (specifier.startsWith('.')) {
      for (const p of packagesReachedFrom(join(dirname(file), specifier), seen)) packages.add(p);
    } else {
      packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);
    }
  }
  return packages;
}

const startedAt = Date.now();
const metrics: Record<string, string | number> = {};
let work = '';
let project = '';
let pack: PackResult;
const running: Running[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tideline-consumer-'));
  project = join(work, 'todo-app');
  mkdirSync(project);

  // `prepack` builds lib/ (npm run build:lib) before npm packs it.
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: repo, timeoutMs: 180_000 });
  // stdout holds the build's output (prepack), then npm's JSON.
  const results = JSON.parse(packed.slice(packed.search(/^\[\s*\{/m))) as PackResult[];
  pack = results[0]!;
  metrics['packed size (bytes)'] = pack.size;
  metrics['unpacked size (bytes)'] = pack.unpackedSize;
  metrics['files in the tarball'] = pack.entryCount;

  for (const [name, text] of docFiles(join(repo, 'docs/getting-started.md'))) {
    writeFileSync(join(project, name), text);
  }

  // `--ignore-scripts`: better-sqlite3 would compile from source here (about
  // 90 s); this checkout's build of the same version for the same Node is
  // copied in instead. Everything else installs as the getting-started says.
  await run(
    'npm',
    [
      'install',
      join(work, pack.filename),
      ...[
        'dexie',
        'zod',
        'jose',
        'typescript',
        'vite',
        '@types/node',
        'fake-indexeddb',
        'react',
        'react-dom',
        '@types/react',
      ].map(installed),
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
    ],
    { cwd: project, timeoutMs: 180_000 },
  );
  const addon = 'build/Release/better_sqlite3.node';
  const ours = join(repo, 'node_modules/better-sqlite3', addon);
  const theirs = join(project, 'node_modules/better-sqlite3', addon);
  const theirVersion = (
    JSON.parse(readFileSync(join(project, 'node_modules/better-sqlite3/package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  expect(installed('better-sqlite3')).toBe(`better-sqlite3@${theirVersion}`);
  mkdirSync(dirname(theirs), { recursive: true });
  copyFileSync(ours, theirs);
  metrics['pack + install (ms)'] = Date.now() - startedAt;
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  if (work) rmSync(work, { recursive: true, force: true });
  metrics['consumer test (ms)'] = Date.now() - startedAt;
  console.log(`consumer test metrics: ${JSON.stringify(metrics, null, 2)}`);
});

describe('tideline installed from its tarball', () => {
  it('holds lib/, the docs and the README, and every export target', () => {
    const paths = pack.files.map((f) => f.path);
    for (const path of paths) expect(path).toMatch(/^(lib\/.+\.(js|d\.ts)|docs\/[\w-]+\.md|README\.md|package\.json)$/);
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules/tideline/package.json'), 'utf8')) as {
      exports: Record<string, string | Record<string, string>>;
      bin: Record<string, string>;
    };
    const targets = Object.values(manifest.exports).flatMap((t) => (typeof t === 'string' ? [t] : Object.values(t)));
    expect(targets.length).toBeGreaterThan(6);
    for (const target of targets) expect(paths).toContain(target.replace(/^\.\//, ''));
    // One TidelineError class for every entry point: an app mutator's rejection
    // (thrown with tideline/schema's class) is an `instanceof TidelineError` on
    // the server (tideline/server), not an INTERNAL error.
    const lib = join(project, 'node_modules/tideline/lib');
    const classes = paths
      .filter((p) => p.endsWith('.js'))
      .map((p) => readFileSync(join(project, 'node_modules/tideline', p), 'utf8'))
      .join('\n')
      .match(/this\.name = "TidelineError"/g); // the constructor: one per copy of the class
    expect(existsSync(lib)).toBe(true);
    expect(classes).toHaveLength(1);
    // What each browser entry reaches, following lib/'s own imports: only the
    // app's peers and the socket.io client, never a server package or a Node built-in.
    for (const entry of ['lib/client/index.js', 'lib/schema/index.js', 'lib/react/index.js']) {
      for (const pkg of packagesReachedFrom(join(project, 'node_modules/tideline', entry))) {
        expect(['dexie', 'zod', 'react', 'socket.io-client'], `${entry} imports ${pkg}`).toContain(pkg);
      }
    }
    for (const bin of Object.values(manifest.bin)) expect(paths).toContain(bin.replace(/^\.\//, ''));
  });

  it("shows in the README the same files as getting-started's", () => {
    const guide = docFiles(join(repo, 'docs/getting-started.md'));
    const readme = docFiles(join(repo, 'README.md'));
    expect(readme.size).toBeGreaterThan(0);
    for (const [name, text] of readme) expect(text, `README.md ${name}`).toBe(guide.get(name));
  });

  it('type-checks the app with moduleResolution NodeNext and Bundler', async () => {
    // skipLibCheck stays off (getting-started's tsconfig): Tideline's own .d.ts files are checked too.
    const tsc = join(project, 'node_modules/typescript/bin/tsc');
    await Promise.all(
      ['tsconfig.json', 'tsconfig.bundler.json'].map((config) =>
        run(process.execPath, [tsc, '-p', config], { cwd: project, timeoutMs: 170_000 }),
      ),
    );
  }, 180_000);

  it('serves the app schema and syncs todos between Node clients and a backend write', async () => {
    const env = { ...process.env, TIDELINE_SECRET: SECRET, TIDELINE_ADMIN_TOKEN: ADMIN_TOKEN };
    const server = start(
      join(project, 'node_modules/.bin/tideline'),
      ['serve', '--schema', './schema.ts', '--data', './data', '--port', '0'],
      { cwd: project, env },
    );
    running.push(server);
    const url = await listeningUrl(server.child, () => server.output(), 30_000);

    const client = (user: string, title: string): Running => {
      const p = start(process.execPath, ['--import', 'tsx', 'node-client.ts', url, user, title], { cwd: project, env });
      running.push(p);
      return p;
    };
    const lists = (p: Running): string[][] =>
      [...p.output().matchAll(/^todos: (.*)$/gm)].map((m) => JSON.parse(m[1]!) as string[]);
    const sees = (p: Running, titles: string[]) => (): boolean =>
      lists(p).some((list) => titles.every((t) => list.includes(t)));

    const backend = (await import(pathToFileURL(join(project, 'backend.ts')).href)) as {
      addTodoFromBackend: (server: string, adminToken: string, title: string) => Promise<void>;
      serverTodos: (server: string) => Promise<string[]>;
    };

    const alice = client('alice', 'from alice');
    await waitFor('alice to see her todo', sees(alice, ['from alice']), 30_000);
    await backend.addTodoFromBackend(url, ADMIN_TOKEN, 'from the backend');
    await waitFor('alice to see the backend todo', sees(alice, ['from alice', 'from the backend']), 30_000);
    // A client that opens later catches up on both, and alice sees its todo.
    const all = ['from alice', 'from the backend', 'from bob'];
    const bob = client('bob', 'from bob');
    await waitFor('bob to see every todo', sees(bob, all), 30_000);
    await waitFor('alice to see every todo', sees(alice, all), 30_000);

    expect((await backend.serverTodos(url)).sort()).toEqual([...all].sort());
    expect(alice.output() + bob.output()).not.toMatch(/rejected|Error/);
  });

  it('serves the app schema from two nodes on one PostgreSQL, as the README shows, and syncs across them', async () => {
    const db = await createTestDatabase();
    try {
      const env = { ...process.env, TIDELINE_SECRET: SECRET, TIDELINE_ADMIN_TOKEN: ADMIN_TOKEN };
      const node = (id: string): Running => {
        const p = start(
          join(project, 'node_modules/.bin/tideline'),
          [
            'serve',
            '--schema',
            './schema.ts',
            '--store',
            db.url,
            '--pg-schema',
            'shop',
            '--node-id',
            id,
            '--port',
            '0',
          ],
          { cwd: project, env },
        );
        running.push(p);
        return p;
      };
      const a = node('node-a');
      const urlA = await listeningUrl(a.child, () => a.output(), 30_000);
      const b = node('node-b');
      const urlB = await listeningUrl(b.child, () => b.output(), 30_000);
      const client = (url: string, user: string, title: string): Running => {
        const p = start(process.execPath, ['--import', 'tsx', 'node-client.ts', url, user, title], {
          cwd: project,
          env,
        });
        running.push(p);
        return p;
      };
      const sees = (p: Running, titles: string[]) => (): boolean =>
        [...p.output().matchAll(/^todos: (.*)$/gm)]
          .map((m) => JSON.parse(m[1]!) as string[])
          .some((list) => titles.every((t) => list.includes(t)));
      const backend = (await import(pathToFileURL(join(project, 'backend.ts')).href)) as {
        addTodoFromBackend: (server: string, adminToken: string, title: string) => Promise<void>;
        serverTodos: (server: string) => Promise<string[]>;
      };
      const all = ['on node a', 'on node b', 'from the backend'];
      const alice = client(urlA, 'alice', 'on node a');
      const bob = client(urlB, 'bob', 'on node b');
      await backend.addTodoFromBackend(urlA, ADMIN_TOKEN, 'from the backend');
      await waitFor('alice (node a) to see every todo', sees(alice, all), 30_000);
      await waitFor('bob (node b) to see every todo', sees(bob, all), 30_000);
      expect((await backend.serverTodos(urlB)).sort()).toEqual([...all].sort());
      for (const p of [alice, bob, a, b]) await p.stop();
    } finally {
      await db.drop();
    }
  });

  it('bundles the browser page with one copy of dexie and zod and no server code', async () => {
    const vite = join(project, 'node_modules/vite/bin/vite.js');
    await run(process.execPath, [vite, 'build', '--outDir', 'web', '--sourcemap', '--logLevel', 'warn'], {
      cwd: project,
      timeoutMs: 60_000,
    });
    const assets = join(project, 'web/assets');
    const js = readdirSync(assets).filter((f) => f.endsWith('.js'));
    const code = js.map((f) => readFileSync(join(assets, f), 'utf8')).join('\n');
    const sources = js.flatMap(
      (f) => (JSON.parse(readFileSync(join(assets, `${f}.map`), 'utf8')) as { sources: string[] }).sources,
    );
    const packagesOf = (name: string): Set<string> =>
      new Set(
        sources.flatMap((s) => {
          const m = new RegExp(`^(.*node_modules/${name})/`).exec(s);
          return m ? [m[1]!] : [];
        }),
      );

    expect([...packagesOf('dexie')]).toHaveLength(1);
    expect([...packagesOf('zod')]).toHaveLength(1);
    expect(sources.some((s) => s.includes('node_modules/tideline/lib/client/'))).toBe(true);
    for (const server of ['express', 'socket.io', 'better-sqlite3', 'engine.io', 'ws', 'tsx', 'jose']) {
      expect([...packagesOf(server)], server).toEqual([]);
    }
    expect(sources.filter((s) => s.includes('tideline/lib/server/'))).toEqual([]);
    for (const text of ['better-sqlite3', 'better_sqlite3', 'express', 'node:fs', 'createServer']) {
      expect(code.includes(text), text).toBe(false);
    }
    metrics['browser page JS, minified (bytes)'] = Buffer.byteLength(code);
    metrics['browser page JS, minified + gzip (bytes)'] = gzipSync(code).length;
    expect(existsSync(join(project, 'web/index.html'))).toBe(true);
  });
});
