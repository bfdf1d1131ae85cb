import { randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import type { JsonValue } from '../shared/json';
import { helloAckSchema } from '../shared/protocol/hello';
import { pushAckSchema } from '../shared/protocol/push';
import type { PushAck } from '../shared/protocol/push';
import { PROTOCOL_VERSION } from '../shared/protocol/version';
import { tokenFor } from '../test/support/node-client';
import { nowMs } from './stats';

/**
 * A light protocol-level client: a real Socket.IO connection to /sync that
 * says hello, pushes mutations and acknowledges catch-up pages, but keeps no
 * local replica (no Dexie, no rebase). The bench uses it where hundreds of
 * full clients in one process would measure the bench process, not the server.
 */

/** The parts of a received change the bench looks at. */
export interface SeenChange {
  lsn: number;
  collection: string;
  id: string;
  doc: Record<string, unknown> | null;
  /** The primary's commit time (its Date.now() when the group commit began). */
  ts: number;
}

export interface SeenChanges {
  from: number;
  to: number;
  changes: SeenChange[];
  /** True for a catch-up page (the server waits for its ack), false for a live message. */
  page: boolean;
  /** nowMs() when the message arrived. */
  receivedAt: number;
}

export interface RawClientOptions {
  userId: string;
  /** Roles in the client token (the query bench loads products as staff). */
  roles?: string[];
  checkpoint?: number;
  /** The term of the primary whose log `checkpoint` belongs to (0 before the first sync); sent by protocol 2 and later. */
  checkpointTerm?: number;
  onChanges?: (msg: SeenChanges) => void;
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export interface RawMutation {
  seq: number;
  name: string;
  args: JsonValue;
}

type AckFn = (res: unknown) => void;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads a `changes` message loosely (the bench must not pay for full validation); null when it is not one. */
export function readChanges(raw: unknown, page: boolean, receivedAt: number): SeenChanges | null {
  if (!isRecord(raw) || typeof raw['from'] !== 'number' || typeof raw['to'] !== 'number') return null;
  const list = raw['changes'];
  if (!Array.isArray(list)) return null;
  const changes: SeenChange[] = [];
  for (const c of list as unknown[]) {
    if (!isRecord(c) || typeof c['lsn'] !== 'number') return null;
    const doc = c['doc'];
    changes.push({
      lsn: c['lsn'],
      collection: String(c['collection']),
      id: String(c['id']),
      doc: isRecord(doc) ? doc : null,
      ts: typeof c['ts'] === 'number' ? c['ts'] : Number.NaN,
    });
  }
  return { from: raw['from'], to: raw['to'], changes, page, receivedAt };
}

export class RawClient {
  readonly clientId = `bench-${randomBytes(9).toString('hex')}`;
  /** Head LSN and term the server reported in its hello ack. */
  headAtHello = 0;
  term = 0;
  /** Highest LSN received (the `to` of the last changes message or the `asOf` of the last snapshot). */
  checkpoint: number;
  live = false;
  pages = 0;
  private nextSeq = 1;
  private readonly liveWaiters: Array<() => void> = [];
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly opts: RawClientOptions,
  ) {
    this.checkpoint = opts.checkpoint ?? 0;
  }

  static async connect(url: string, opts: RawClientOptions): Promise<RawClient> {
    const socket = io(`${url.replace(/\/$/, '')}/sync`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: opts.connectTimeoutMs ?? 20_000,
    });
    const client = new RawClient(socket, opts);
    socket.on('changes', (raw: unknown, ack: unknown) =>
      client.onChanges(raw, typeof ack === 'function' ? (ack as AckFn) : null),
    );
    socket.on('snapshot', (raw: unknown, ack: unknown) =>
      client.onSnapshot(raw, typeof ack === 'function' ? (ack as AckFn) : null),
    );
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', (err: Error) => reject(err));
      });
      const ack = helloAckSchema.parse(
        await socket.timeout(opts.requestTimeoutMs ?? 20_000).emitWithAck('hello', {
          protocol: PROTOCOL_VERSION,
          clientId: client.clientId,
          token: tokenFor(opts.userId, opts.roles),
          checkpoint: client.checkpoint,
          checkpointTerm: opts.checkpointTerm ?? 0,
          pendingFrom: 1,
        }),
      );
      if (!ack.ok) throw new Error(`hello refused: ${ack.error.code} ${ack.error.message}`);
      client.headAtHello = ack.headLsn;
      client.term = ack.term;
      client.nextSeq = ack.lastSeq + 1;
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Resolves once the server has switched this client to live changes. */
  waitLive(timeoutMs = 30_000): Promise<void> {
    if (this.live) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.clientId} not live after ${timeoutMs} ms`)), timeoutMs);
      this.liveWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Sends one push of `build(seq)` for the next `count` seqs; resolves with the parsed ack. */
  async push(count: number, build: (seq: number) => { name: string; args: JsonValue }): Promise<PushAck> {
    const mutations: RawMutation[] = [];
    for (let i = 0; i < count; i++) {
      const seq = this.nextSeq++;
      mutations.push({ seq, ...build(seq) });
    }
    const raw: unknown = await this.socket
      .timeout(this.opts.requestTimeoutMs ?? 60_000)
      .emitWithAck('push', { mutations });
    return pushAckSchema.parse(raw);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.removeAllListeners();
    this.socket.disconnect();
  }

  private onChanges(raw: unknown, ack: AckFn | null): void {
    const msg = readChanges(raw, ack !== null, nowMs());
    if (msg === null) return;
    this.checkpoint = Math.max(this.checkpoint, msg.to);
    if (ack) this.pages++;
    this.opts.onChanges?.(msg);
    ack?.({ ok: true });
    if (!ack && !this.live) {
      this.live = true;
      for (const w of this.liveWaiters.splice(0)) w();
    }
  }

  private onSnapshot(raw: unknown, ack: AckFn | null): void {
    if (isRecord(raw) && raw['done'] === true && typeof raw['asOf'] === 'number') this.checkpoint = raw['asOf'];
    ack?.({ ok: true });
  }
}
