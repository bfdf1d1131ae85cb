/**
 * Store-level commit throughput on PostgreSQL (issue 11): how the `head` row
 * lock that orders LSNs across nodes behaves as nodes are added, against the
 * SQLite store behind the async adapter. No server, no sockets: N PgStore
 * "nodes" in this process on one schema, each running W concurrent group
 * commits of M mutations (read last seq, append one document, record the
 * outcome), for a fixed time. On this 2-core machine PostgreSQL and this
 * process share the cores: the figures say what the lock costs, not what a
 * cluster of machines would do.
 *
 *   npx tsx bench/pg-store-commits.ts [--seconds 5] [--batch 10] [--writers 8]
 *
 * Needs the test PostgreSQL (scripts/ensure-postgres.mjs); uses a database
 * of its own and drops it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AsyncStore } from '../server/store/async-store';
import { openPgStore } from '../server/store/pg-store';
import { createTestDatabase } from '../server/store/pg-test-db';
import { openSqliteStore } from '../server/store/sqlite-store';
import { asyncStoreOf } from '../server/store/sync-store-adapter';

const { values } = parseArgs({
  options: { seconds: { type: 'string' }, batch: { type: 'string' }, writers: { type: 'string' } },
});
const SECONDS = Number(values.seconds ?? 5);
const BATCH = Number(values.batch ?? 10);
const WRITERS = Number(values.writers ?? 8);

/** Commits group commits on `nodes` (writers spread over them) until the time is up; mutations per second. */
async function run(nodes: AsyncStore[]): Promise<{ mutationsPerSecond: number; commits: number }> {
  const end = Date.now() + SECONDS * 1000;
  let commits = 0;
  let mutations = 0;
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      const node = nodes[w % nodes.length]!;
      for (let round = 0; Date.now() < end; round++) {
        await node.transact(async (tx) => {
          for (let m = 0; m < BATCH; m++) {
            const clientId = `w${w}-c${m}`;
            const seq = (await tx.lastSeq(clientId)) + 1;
            const id = `${clientId}-${seq}`;
            await tx.append(
              { collection: 'notes', id, doc: { id, text: 'x'.repeat(200) }, owner: null },
              { clientId, seq },
              0,
            );
            await tx.recordOutcome(clientId, seq, null);
          }
        });
        commits++;
        mutations += BATCH;
      }
    }),
  );
  return { mutationsPerSecond: Math.round(mutations / SECONDS), commits };
}

const db = await createTestDatabase();
const dir = mkdtempSync(join(tmpdir(), 'tideline-bench-'));
const rows: Array<[string, number, number]> = [];
try {
  const sqlite = openSqliteStore(join(dir, 'tideline.db'));
  const r = await run([asyncStoreOf(sqlite)]);
  rows.push(['sqlite (async adapter), 1 node', r.mutationsPerSecond, r.commits]);
  sqlite.close();
  for (const n of [1, 2, 3]) {
    const schema = `bench_${n}`;
    const nodes = await Promise.all(Array.from({ length: n }, () => openPgStore({ url: db.url, schema })));
    const r = await run(nodes);
    rows.push([`postgres, ${n} node${n > 1 ? 's' : ''}`, r.mutationsPerSecond, r.commits]);
    await nodes[0]!.dropSchema();
    await Promise.all(nodes.map((s) => s.close()));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  await db.drop();
}
console.log(`${WRITERS} writers, ${BATCH} mutations per commit, ${SECONDS} s each`);
for (const [name, perSecond, commits] of rows)
  console.log(`${name.padEnd(32)} ${String(perSecond).padStart(7)} mutations/s  (${commits} commits)`);
