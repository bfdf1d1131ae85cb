import autocannon from 'autocannon';
import type { Doc } from '../../shared/json';
import { waitFor } from '../../test/support/wait';
import { RawClient } from '../raw-client';
import type { Json, Metric, Resources, ScenarioOptions, ScenarioResult } from '../scenario';
import type { BenchServer } from '../server';
import { nowMs, round } from '../stats';

/**
 * Queries under concurrent HTTP load (issue #12): 50,000 products in the
 * demo schema, loaded through a primary by protocol clients (staff, 500 puts
 * per push) and replicated to two replicas (`--primary URL`). Then each
 * query shape below is driven by autocannon (20 connections, `durationS`
 * seconds each) against the primary, against one replica, and against the
 * primary and both replicas at once (20 connections in all, 7/7/6; the
 * figure is the sum of the three). Every figure is printed beside the
 * empty-collection query (`/query/notes?limit=1`: what the HTTP stack costs)
 * measured on the same target in the same run, as a ratio. All processes,
 * autocannon included, share the machine's cores.
 */

export interface QueryBenchConfig {
  products: number;
  writers: number;
  batch: number;
  connections: number;
  durationS: number;
}

export const QUERY_BENCH: QueryBenchConfig = {
  products: 50_000,
  writers: 10,
  batch: 500,
  connections: 20,
  durationS: 3,
};

const CATEGORIES = ['Toys', 'Books', 'Garden', 'Kitchen', 'Music', 'Sports', 'Tools', 'Games', 'Office', 'Beauty'];

function product(i: number): Doc {
  const id = `p${String(i).padStart(5, '0')}`;
  return {
    id,
    name: `Product ${i}`,
    category: CATEGORIES[i % CATEGORIES.length]!,
    // Spread over 0.00-99.99, not in id order.
    price: ((i * 7919) % 10_000) / 100,
    stock: i % 50,
    rating: i % 6,
  };
}

/** The measured shapes; `empty` is the reference every other one is divided by. */
export const QUERIES: Array<{ key: string; path: string }> = [
  { key: 'empty', path: '/query/notes?limit=1' },
  { key: 'category eq, limit 50', path: '/query/products?filter=category:eq:Toys&limit=50' },
  { key: 'price lt 20, orderBy price, limit 10', path: '/query/products?filter=price:lt:20&orderBy=price&limit=10' },
  { key: 'id eq', path: '/query/products?filter=id:eq:p00011' },
  {
    key: 'name prefix, orderBy name, limit 20',
    path: '/query/products?filter=name:prefix:Product%20123&orderBy=name&limit=20',
  },
  {
    key: 'category eq + price gte 50, orderBy price desc, limit 20 (compound)',
    path: '/query/products?filter=category:eq:Toys&filter=price:gte:50&orderBy=price&order=desc&limit=20',
  },
];

interface Load {
  reqPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

/** autocannon on each of `urls` at once, `connections` split between them; throughput summed, latency of the busiest. */
async function drive(urls: string[], path: string, connections: number, durationS: number): Promise<Load> {
  const share = (i: number): number => Math.floor(connections / urls.length) + (i < connections % urls.length ? 1 : 0);
  const results = await Promise.all(
    urls.map((url, i) => autocannon({ url: `${url}${path}`, connections: share(i), duration: durationS })),
  );
  const total = results.reduce((n, r) => n + r.requests.total, 0);
  return {
    reqPerSec: total / durationS,
    p50: Math.max(...results.map((r) => r.latency.p50)),
    p99: Math.max(...results.map((r) => r.latency.p99)),
    non2xx: results.reduce((n, r) => n + r.non2xx, 0),
    errors: results.reduce((n, r) => n + r.errors + r.timeouts, 0),
  };
}

async function load(server: BenchServer, cfg: QueryBenchConfig, log: (line: string) => void): Promise<number> {
  const writers: RawClient[] = [];
  try {
    for (let i = 0; i < cfg.writers; i++) {
      writers.push(await RawClient.connect(server.url, { userId: `query-loader-${i}`, roles: ['staff'] }));
    }
    await Promise.all(writers.map((w) => w.waitLive()));
    const started = nowMs();
    let next = 0;
    await Promise.all(
      writers.map(async (w) => {
        while (next < cfg.products) {
          const n = Math.min(cfg.batch, cfg.products - next);
          let i = next;
          next += n;
          const ack = await w.push(n, () => ({ name: 'put', args: { collection: 'products', doc: product(i++) } }));
          if (!ack.ok) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
        }
      }),
    );
    log(`  loaded ${cfg.products} products in ${round((nowMs() - started) / 1000)} s`);
  } finally {
    for (const w of writers) w.close();
  }
  return (await server.adminStatus()).headLsn;
}

export async function query(
  options: ScenarioOptions,
  res: Resources,
  cfg: QueryBenchConfig = QUERY_BENCH,
): Promise<ScenarioResult> {
  const scenario = 'query';
  const started = nowMs();
  const metrics: Metric[] = [];
  const details: { [key: string]: Json } = {};
  const primary = await res.server();
  const head = await load(primary, cfg, options.log);
  const replicas = [await res.server(['--primary', primary.url]), await res.server(['--primary', primary.url])];
  await waitFor(
    'both replicas have the products',
    async () => (await Promise.all(replicas.map((r) => r.adminStatus()))).every((s) => s.headLsn >= head),
    90_000,
    100,
  );
  // Each shape answers and finds something before it is measured.
  for (const q of QUERIES.slice(1)) {
    const r = await fetch(`${primary.url}${q.path}`);
    const body = (await r.json()) as { docs?: unknown[] };
    if (r.status !== 200 || !body.docs?.length) throw new Error(`${q.path}: HTTP ${r.status}, no documents`);
  }
  const targets: Array<{ key: string; urls: string[] }> = [
    { key: 'primary', urls: [primary.url] },
    { key: 'replica', urls: [replicas[0]!.url] },
    { key: 'primary+2 replicas', urls: [primary.url, ...replicas.map((r) => r.url)] },
  ];
  for (const target of targets) {
    options.log(`  ${target.key}: ${cfg.connections} connections, ${cfg.durationS} s per query`);
    // Unmeasured: the first second of load on a node runs cold code (JIT, connection set-up).
    await drive(target.urls, QUERIES[0]!.path, cfg.connections, 1);
    const figures: { [key: string]: Json } = {};
    let empty: Load | null = null;
    for (const q of QUERIES) {
      const l = await drive(target.urls, q.path, cfg.connections, cfg.durationS);
      if (q.key === 'empty') empty = l;
      const ratio = empty && empty.reqPerSec > 0 ? l.reqPerSec / empty.reqPerSec : null;
      figures[q.key] = { ...l, ratio };
      const line = `    ${q.key}: ${round(l.reqPerSec)} req/s, p50 ${l.p50} ms, p99 ${l.p99} ms${ratio === null ? '' : `, ${round(ratio)}× empty`}${l.non2xx + l.errors > 0 ? `, ${l.non2xx} non-2xx, ${l.errors} errors` : ''}`;
      options.log(line);
      const measured = q.key !== 'empty' && ratio !== null;
      metrics.push({
        scenario,
        metric: `${target.key}: ${q.key}: req/s`,
        value: round(l.reqPerSec),
        unit: '/s',
        note: `p50 ${l.p50} ms, p99 ${l.p99} ms${measured ? `, ${round(ratio)}× empty` : ''}`,
        ...(measured
          ? { target: '≥ 0.5× empty, p99 < 50 ms', pass: ratio >= 0.5 && l.p99 < 50 && l.non2xx === 0 }
          : {}),
      });
    }
    details[target.key] = figures;
  }
  return {
    name: scenario,
    description:
      `${cfg.products} products; autocannon, ${cfg.connections} connections, ${cfg.durationS} s per query, ` +
      'against the primary, one replica, and the primary + 2 replicas together (connections split, req/s summed); ' +
      'every process on the same machine shares its cores',
    metrics,
    details,
    serverPeakRssKb: [],
    durationMs: nowMs() - started,
  };
}
