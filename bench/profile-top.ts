import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`, or `npm run bench -- --cpu-prof`)
 * into the functions with the most self time, and the files they live in.
 *
 *   npx tsx bench/profile-top.ts <file>.cpuprofile [top=25] [fromMs] [toMs]
 *
 * `fromMs`/`toMs` keep only the samples in that window (ms from the start of
 * the profile), e.g. to leave out the server's start-up.
 */

const profileSchema = z.object({
  nodes: z.array(
    z.object({
      id: z.number(),
      callFrame: z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() }),
      children: z.array(z.number()).optional(),
    }),
  ),
  startTime: z.number(),
  endTime: z.number(),
  samples: z.array(z.number()),
  timeDeltas: z.array(z.number()),
});

export interface ProfileEntry {
  name: string;
  where: string;
  selfMs: number;
  pct: number;
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const main = url.indexOf('/main/');
  if (main >= 0) return url.slice(main + '/main/'.length);
  return url.replace(/^file:\/\//, '');
}

export interface ProfileSummary {
  totalMs: number;
  byFunction: ProfileEntry[];
  /** Time with the function anywhere on the stack. */
  inclusive: ProfileEntry[];
  byFile: ProfileEntry[];
}

export function topSelf(path: string, top: number, fromMs = 0, toMs = Infinity): ProfileSummary {
  const profile = profileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  const selfUs = new Map<number, number>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const keyOf = (id: number): { key: string; name: string; where: string } | null => {
    const node = byId.get(id);
    if (!node) return null;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const name = functionName || '(anonymous)';
    return { key: `${name}@${where}`, name, where };
  };
  const inclusiveUs = new Map<string, { name: string; where: string; us: number }>();
  let t = profile.startTime;
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    const rel = (t - profile.startTime) / 1000;
    if (rel < fromMs || rel > toMs) return;
    totalUs += dt;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = keyOf(cur);
      if (!k || seen.has(k.key)) continue;
      seen.add(k.key);
      const e = inclusiveUs.get(k.key) ?? { name: k.name, where: k.where, us: 0 };
      e.us += dt;
      inclusiveUs.set(k.key, e);
    }
  });
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const file = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (us === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const name = functionName || '(anonymous)';
    const key = `${name}@${where}`;
    const entry = fn.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    fn.set(key, entry);
    const f = url ? shortUrl(url) : name;
    file.set(f, (file.get(f) ?? 0) + us);
  }
  const toEntry = (name: string, where: string, us: number): ProfileEntry => ({
    name,
    where,
    selfMs: Math.round(us / 100) / 10,
    pct: Math.round((us / totalUs) * 1000) / 10,
  });
  const byFunction = [...fn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => toEntry(e.name, e.where, e.us));
  const byFile = [...file.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([f, us]) => toEntry(f, '', us));
  const inclusive = [...inclusiveUs.values()]
    .filter((e) => e.name !== '(root)')
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => toEntry(e.name, e.where, e.us));
  return { totalMs: Math.round(totalUs / 1000), byFunction, inclusive, byFile };
}

const isMain =
  process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, 'bench/'));
if (isMain) {
  const path = process.argv[2];
  if (!path) {
    console.error('usage: tsx bench/profile-top.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const { totalMs, byFunction, inclusive, byFile } = topSelf(
    path,
    Number(process.argv[3] ?? 25),
    Number(process.argv[4] ?? 0),
    Number(process.argv[5] ?? Infinity),
  );
  console.log(`profile ${path}: ${totalMs} ms sampled`);
  console.log('\nself time by function:');
  for (const e of byFunction)
    console.log(`${String(e.selfMs).padStart(9)} ms ${String(e.pct).padStart(5)}%  ${e.name}  ${e.where}`);
  console.log('\ntotal time (function on the stack):');
  for (const e of inclusive)
    console.log(`${String(e.selfMs).padStart(9)} ms ${String(e.pct).padStart(5)}%  ${e.name}  ${e.where}`);
  console.log('\nself time by file:');
  for (const e of byFile) console.log(`${String(e.selfMs).padStart(9)} ms ${String(e.pct).padStart(5)}%  ${e.name}`);
}
