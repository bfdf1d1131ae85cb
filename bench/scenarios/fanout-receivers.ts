import { createInterface } from 'node:readline';
import type { SeenChanges } from '../raw-client';
import { LightReceiver } from './light-receiver';

/**
 * Fan-out receivers in a process of their own, so that reading thousands of
 * live messages does not stall the bench process, where the writer runs and
 * push times are taken. Usage: fanout-receivers.ts URL FIRST COUNT. Connects
 * light receivers (LightReceiver: /sync over a bare WebSocket; users
 * reader-FIRST … reader-(FIRST+COUNT-1)), 50 at a
 * time, and prints JSON lines: `ready` once all are live, `progress` (measured
 * receipts so far) every 200 ms, and after a `finish` line on stdin (carrying
 * each note's push time) one `done` line with the latencies. Receipt times are
 * `nowMs()` (time origin + performance.now()), comparable across processes.
 */

const [url, firstArg, countArg] = process.argv.slice(2);
if (!url || !firstArg || !countArg) throw new Error('usage: fanout-receivers.ts URL FIRST COUNT');
const first = Number(firstArg);
const count = Number(countArg);

const say = (msg: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(msg)}\n`);

/** Note id → receipt times (one per receiver), and the commit ts of each note. */
const receipts = new Map<string, number[]>();
const sentAt = new Map<string, number>();
const commitTs = new Map<string, number>();
const seen = new Array<number>(count).fill(0);
let measured = 0;

const onChangesFor =
  (index: number) =>
  (msg: SeenChanges): void => {
    for (const c of msg.changes) {
      const doc = c.doc;
      if (c.collection !== 'notes' || doc === null || doc['warmup'] !== false) continue;
      let list = receipts.get(c.id);
      if (!list) receipts.set(c.id, (list = []));
      list.push(msg.receivedAt);
      if (typeof doc['sentAt'] === 'number') sentAt.set(c.id, doc['sentAt']);
      commitTs.set(c.id, c.ts);
      seen[index]!++;
      measured++;
    }
  };

const clients: LightReceiver[] = [];
for (let i = 0; i < count; i += 50) {
  const batch = await Promise.all(
    Array.from({ length: Math.min(50, count - i) }, (_, k) =>
      LightReceiver.connect(url, `reader-${first + i + k}`, onChangesFor(i + k)),
    ),
  );
  clients.push(...batch);
}
await Promise.all(clients.map((c) => c.waitLive(60_000)));
say({ type: 'ready', receivers: clients.length });
const progress = setInterval(() => say({ type: 'progress', measured }), 200);

createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line) as { type: string; pushedAt?: Record<string, number> };
  if (msg.type !== 'finish') return;
  clearInterval(progress);
  const pushedAt = msg.pushedAt ?? {};
  const pushToReceipt: number[] = [];
  const mutateToReceipt: number[] = [];
  const commitToReceipt: number[] = [];
  let unmatched = 0;
  for (const [id, times] of receipts) {
    const pushed = pushedAt[id];
    const sent = sentAt.get(id);
    const ts = commitTs.get(id)!;
    for (const t of times) {
      if (pushed === undefined || sent === undefined) {
        unmatched++;
        continue;
      }
      pushToReceipt.push(t - pushed);
      mutateToReceipt.push(t - sent);
      commitToReceipt.push(t - ts);
    }
  }
  for (const c of clients) c.close();
  const done = {
    type: 'done',
    pushToReceipt,
    mutateToReceipt,
    commitToReceipt,
    commitTs: Object.fromEntries(commitTs),
    minSeen: seen.reduce((a, b) => Math.min(a, b), Infinity),
    unmatched,
  };
  // Megabytes into a pipe: written asynchronously once the pipe is full, so exit only once it is all out.
  process.stdout.write(`${JSON.stringify(done)}\n`, () => process.exit(0));
});
