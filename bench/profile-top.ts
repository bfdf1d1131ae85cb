import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`, or `npm run bench -- --cpu-prof`)
 * into the functions with the most self time, and the files they live in.
 *
 *   npx tsx bench/profile-top.ts bench/results/tmp/prof/<file>.cpuprofile [top=25]
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

export function topSelf(path: string, top: number): { totalMs: number; byFunction: ProfileEntry[]; byFile: ProfileEntry[] } {
  const profile = profileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const totalUs = profile.endTime - profile.startTime;
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
  const byFunction = [...fn.values()].sort((a, b) => b.us - a.us).slice(0, top).map((e) => toEntry(e.name, e.where, e.us));
  const byFile = [...file.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([f, us]) => toEntry(f, '', us));
  return { totalMs: Math.round(totalUs / 1000), byFunction, byFile };
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, 'bench/'));
if (isMain) {
  const path = process.argv[2];
  if (!path) {
    console.error('usage: tsx bench/profile-top.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const { totalMs, byFunction, byFile } = topSelf(path, Number(process.argv[3] ?? 25));
  console.log(`profile ${path}: ${totalMs} ms wall`);
  console.log('\nself time by function:');
  for (const e of byFunction) console.log(`${String(e.selfMs).padStart(9)} ms ${String(e.pct).padStart(5)}%  ${e.name}  ${e.where}`);
  console.log('\nself time by file:');
  for (const e of byFile) console.log(`${String(e.selfMs).padStart(9)} ms ${String(e.pct).padStart(5)}%  ${e.name}`);
}
