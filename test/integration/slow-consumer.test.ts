import 'fake-indexeddb/auto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helloAckSchema } from '../../shared/protocol/hello';
import { openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { NoteStream } from '../support/note-stream';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

/** Stalled readers, the writer's stream, and what the server may grow by meanwhile. */
const STALLED_RAW = 4;
const NOTE_BYTES = 60_000;
const NOTES_PER_PUSH = 16;
const STREAM_BYTES = 100 * 1024 * 1024;
const STREAM_MS = 20_000;
// The stream alone (about 25 MB/s from rotating writers) costs the server 230-290 MB of heap it has not
// collected yet, even with readers that keep up; five stalled sessions holding all of it add about 500 MB more
// (measured: 810 MB of growth without the cap, 235-283 MB with it).
const RSS_GROWTH_BOUND = 400 * 1024 * 1024;

describe('slow consumers', () => {
  let server: ServerProcess;
  const links: StallableLink[] = [];
  const raws: RawClient[] = [];
  const clients: NodeClient[] = [];
  const streams: NoteStream[] = [];

  beforeAll(async () => {
    // The default cap (8 MiB); the test states it so that a change of default shows here.
    // The stream (about 5 MB/s) comes from a series of writers, each within the default push rates' burst.
    server = await startServerProcess({ args: ['--no-seed', '--max-session-buffer-bytes', String(8 * 1024 * 1024)] });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const r of raws) r.close();
    for (const s of streams) s.close();
    for (const l of links) await l.close();
    await server.stop();
  });

  it('clients that stop reading are closed, server RSS stays bounded, and a stalled client converges once it reads', async () => {
    // Four raw sessions and one real client, each behind a link that can stop reading from the server.
    const stalled: Array<{ raw: RawClient; link: StallableLink }> = [];
    for (let i = 0; i < STALLED_RAW; i++) {
      const link = await stallableLink(new URL(server.url));
      links.push(link);
      const raw = await rawClient(link.url);
      raws.push(raw);
      expect(helloAckSchema.parse(await raw.hello(tokenFor(`slow-${i}`), `slow-reader-${i}`)).ok).toBe(true);
      await waitFor(`slow reader ${i} live`, () => raw.received.some((r) => r.event === 'changes'));
      stalled.push({ raw, link });
    }
    const realLink = await stallableLink(new URL(server.url));
    links.push(realLink);
    const real = await openClient([realLink.url], 'slow-real');
    clients.push(real);
    await waitFor('real client live', () => real.status().state === 'live');
    await waitFor('the five sessions admitted', async () => (await connected(server)) === STALLED_RAW + 1);
    for (const s of stalled) s.link.stall();
    realLink.stall();

    // Public notes from a series of writers, each under the demo schema's per-user notes quota.
    const stream = new NoteStream(server.url, 'bulk');
    streams.push(stream);
    await stream.ready();

    const pid = server.child.pid!;
    const socketsWhileStalled = openSockets(pid);
    const rssBefore = procStatusBytes(pid, 'VmRSS');
    const started = Date.now();
    let written = 0;
    while (written < STREAM_BYTES) {
      expect(Date.now() - started, 'the write stream took too long').toBeLessThan(STREAM_MS * 2);
      const ack = await stream.push(NOTES_PER_PUSH, NOTE_BYTES);
      expect(ack.ok && ack.results.every((r) => r.status === 'applied')).toBe(true);
      written += NOTES_PER_PUSH * NOTE_BYTES;
    }
    const seq = stream.written;
    const lastId = `bulk-${seq}`;
    const streamMs = Date.now() - started;
    // The peak resident size since start (VmHWM), so growth that came and went counts too.
    const growth = procStatusBytes(pid, 'VmHWM') - rssBefore;
    console.log(
      `slow consumers: ${Math.round(written / 2 ** 20)} MB written in ${streamMs} ms; server RSS ` +
        `${Math.round(rssBefore / 2 ** 20)} MB before, peak growth ${Math.round(growth / 2 ** 20)} MB`,
    );
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND);

    // Every stalled session was closed by the server; the last writer stays.
    await waitFor('stalled sessions closed', async () => (await connected(server)) === 1, 10_000);
    expect(server.output().match(/closing a slow client/g)?.length).toBe(STALLED_RAW + 1);
    // ... and their connections cut: Socket.IO's own close would wait for a drain that never comes.
    await waitFor(
      'stalled connections cut',
      () => openSockets(pid) <= socketsWhileStalled - (STALLED_RAW + 1),
      10_000,
      50,
    );

    // The real client reads again: its link sees the server's close, it reconnects and catches up.
    realLink.resume();
    await waitFor(
      'the stalled real client converges',
      async () => (await real.db.table('notes').count()) === seq && real.status().state === 'live',
      60_000,
      100,
    );
    const last = await real.collection('notes').get(lastId);
    expect(last?.['text']).toBe(String(seq % 10).repeat(NOTE_BYTES));
  }, 150_000);
});

async function connected(server: ServerProcess): Promise<number> {
  const status = await server.admin<{ connectedClients: number }>('/status');
  return status.connectedClients;
}

/** A field of /proc/<pid>/status (kB there), in bytes. */
function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m?.[1]) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]) * 1024;
}

/** How many sockets a process holds open (its file descriptors that are sockets). */
function openSockets(pid: number): number {
  const fds = readdirSync(`/proc/${pid}/fd`);
  let sockets = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++;
    } catch {
      // closed while we looked
    }
  }
  return sockets;
}

interface StallableLink {
  url: string;
  /** Stops reading from the server on the connections open now (TCP backpressure reaches the server). */
  stall(): void;
  resume(): void;
  close(): Promise<void>;
}

/**
 * A TCP link to `target` whose open connections can stop reading from the
 * server, as a client that keeps its connection but reads nothing does. New
 * connections (a reconnect) are not stalled.
 */
async function stallableLink(target: URL): Promise<StallableLink> {
  const sockets = new Set<Socket>();
  const upstreams = new Set<Socket>();
  const stalled = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    upstreams.add(upstream);
    client.pipe(upstream);
    // Not piped: a paused upstream must stay paused whatever the client side does.
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      upstreams.delete(upstream);
    };
    for (const s of [client, upstream]) s.on('close', end).on('error', end).on('end', end);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stall() {
      for (const u of upstreams) {
        u.pause();
        stalled.add(u);
      }
    },
    resume() {
      for (const u of stalled) u.resume();
      stalled.clear();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
