import { createInterface } from 'node:readline';
import { FloodClient } from './abuse-client';
import { ownedId } from '../../shared/schema/owned-id';

/**
 * The abuse scenario's flooding user, in a process of its own so that the
 * work of reading its fan-out does not stall the bench process, where the
 * normal user's latency is measured. Usage: abuse-flooder.ts URL SESSIONS
 * MUTATIONS_PER_PUSH PAD_BYTES. Prints JSON lines: `ready` once its sessions
 * are connected, `progress` every 250 ms, `done` after `stop` on stdin.
 */

const [url, sessionsArg, perPushArg, padArg] = process.argv.slice(2);
if (!url || !sessionsArg || !perPushArg || !padArg)
  throw new Error('usage: abuse-flooder.ts URL SESSIONS PER_PUSH PAD');
const sessions = Number(sessionsArg);
const perPush = Number(perPushArg);
const pad = 'x'.repeat(Number(padArg));

const say = (msg: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(msg)}\n`);

const refusals = new Map<string, number>();
const connected = await Promise.all(
  Array.from({ length: sessions }, () => FloodClient.connect(url, 'flooder', refusals)),
);
const clients = connected.filter((c): c is FloodClient => c !== null);
say({ type: 'ready', admitted: clients.length, refusedConnections: Object.fromEntries(refusals) });

let flooding = true;
let applied = 0;
const refusedPushes = new Map<string, number>();
const progress = setInterval(() => say({ type: 'progress', applied }), 250);
const floods = clients.map(async (c, ci) => {
  while (flooding && !c.closed) {
    try {
      // (Not `applied += await …`: that reads `applied` before the wait and loses the other sessions' counts.)
      const n = await c.push(
        perPush,
        (seq) => ({
          name: 'put',
          args: {
            collection: 'items',
            doc: { id: ownedId('flooder', `f${ci}-${seq}`), owner: 'flooder', n: seq, pad },
          },
        }),
        60_000,
        (code) => refusedPushes.set(code, (refusedPushes.get(code) ?? 0) + 1),
      );
      applied += n;
    } catch {
      return;
    }
  }
});

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stop') return;
  flooding = false;
  clearInterval(progress);
  const closedEarly = clients.filter((c) => c.closed).length;
  for (const c of clients) c.close();
  void Promise.race([Promise.all(floods), new Promise((r) => setTimeout(r, 3000))]).then(() => {
    say({ type: 'done', applied, refusedPushes: Object.fromEntries(refusedPushes), closedEarly });
    process.exit(0);
  });
});
