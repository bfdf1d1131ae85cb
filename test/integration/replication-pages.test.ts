import { io } from 'socket.io-client';
import { afterAll, describe, expect, it } from 'vitest';
import { followAckSchema, replChangesSchema } from '../../shared/protocol/replication';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { NoteStream } from '../support/note-stream';
import { startServerProcess, TEST_CLUSTER_SECRET } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

const PAGE_BYTES = 1024 * 1024;
const NOTE_BYTES = 60_000;

/** A replica catching up gets pages bounded by bytes, as clients do (issue 9: 2,000 large changes were one page). */
describe('replication catch-up pages', () => {
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it('stay within --catch-up-page-bytes, with every change sent once and in order', async () => {
    const primary = await startServerProcess({ args: ['--no-seed', '--catch-up-page-bytes', String(PAGE_BYTES)] });
    servers.push(primary);
    const stream = new NoteStream(primary.url, 'big');
    for (let i = 0; i < 4; i++) {
      const ack = await stream.push(16, NOTE_BYTES);
      expect(ack.ok && ack.results.every((r) => r.status === 'applied')).toBe(true);
    }
    stream.close();
    const head = stream.written;

    const socket = io(`${primary.url}/replication`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: { secret: TEST_CLUSTER_SECRET },
    });
    const pages: Array<{ from: number; to: number; changes: number; bytes: number }> = [];
    socket.on('repl:changes', (raw: unknown, ack: (r: unknown) => void) => {
      const msg = replChangesSchema.parse(raw);
      pages.push({
        from: msg.from,
        to: msg.to,
        changes: msg.changes.length,
        bytes: Buffer.byteLength(JSON.stringify(raw)),
      });
      ack({ appliedLsn: msg.to });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      const raw: unknown = await socket.timeout(5000).emitWithAck('follow', {
        protocol: PROTOCOL_VERSION,
        replicaId: 'pages',
        url: null,
        term: 0,
        checkpoint: 0,
        checkpointTerm: 0,
        clusterId: null,
        checkpointEntry: null,
      });
      expect(followAckSchema.parse(raw).ok).toBe(true);
      await waitFor('the replica caught up', () => pages.at(-1)?.to === head, 20_000);
    } finally {
      socket.disconnect();
    }
    console.log(`replication pages: ${pages.map((p) => `${p.changes}/${Math.round(p.bytes / 1024)} KiB`).join(', ')}`);
    // Contiguous, and together every change once.
    pages.forEach((p, i) => expect(p.from).toBe(i === 0 ? 0 : pages[i - 1]!.to));
    expect(pages.reduce((n, p) => n + p.changes, 0)).toBe(head);
    // A push of 16 notes is one mutation each, so a page ends between them; the budget holds with room for keys.
    expect(pages.length).toBeGreaterThan(3);
    for (const p of pages) expect(p.bytes).toBeLessThan(PAGE_BYTES + 64 * 1024);
  });
});
