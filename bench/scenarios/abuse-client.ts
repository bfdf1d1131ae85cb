import { randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { tokenFor } from '../../test/support/node-client';
import { sleep } from '../scenario';
import type { Json } from '../scenario';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A minimal /sync client for the abuse scenario: unlike the bench's RawClient
 * it retries a refused push with the same seqs, after the server's
 * retryAfterMs (read raw, so it also runs against servers that send none).
 */
export class FloodClient {
  readonly clientId = `abuse-${randomBytes(9).toString('hex')}`;
  nextSeq = 1;
  closed = false;
  private constructor(private readonly socket: Socket) {}

  /** Null when the server refused the connection or its hello (connection limits); the reason in `refusals`. */
  static async connect(url: string, userId: string, refusals: Map<string, number>): Promise<FloodClient | null> {
    const socket = io(`${url}/sync`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: 20_000,
    });
    const client = new FloodClient(socket);
    let fatal: string | null = null;
    socket.on('fatal', (e: unknown) => (fatal = isRecord(e) ? String(e['code']) : 'fatal'));
    // Pages and live changes are acked at once and otherwise ignored: the flood reads what it is sent.
    const ackAll = (_msg: unknown, ack: unknown): void => {
      if (typeof ack === 'function') (ack as (r: unknown) => void)({ ok: true });
    };
    socket.on('changes', ackAll);
    socket.on('snapshot', ackAll);
    socket.on('disconnect', () => (client.closed = true));
    const refuse = (why: string): null => {
      refusals.set(why, (refusals.get(why) ?? 0) + 1);
      client.close();
      return null;
    };
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', (err: Error) => reject(err));
        socket.once('disconnect', () => reject(new Error('disconnected')));
      });
      const ack = helloAckSchema.parse(
        await socket.timeout(20_000).emitWithAck('hello', {
          protocol: PROTOCOL_VERSION,
          clientId: client.clientId,
          token: tokenFor(userId),
          checkpoint: 0,
          checkpointTerm: 0,
          pendingFrom: 1,
        }),
      );
      if (!ack.ok) return refuse(`hello ${ack.error.code}`);
      client.nextSeq = ack.lastSeq + 1;
      return client;
    } catch (err) {
      return refuse(fatal ?? (err instanceof Error ? err.message : 'connect failed'));
    }
  }

  /**
   * Pushes `build(seq)` for the next `count` seqs until accepted: a RATE_LIMITED refusal waits
   * its retryAfterMs (read raw, so this file also runs against servers that do not send one).
   */
  async push(
    count: number,
    build: (seq: number) => { name: string; args: Json },
    timeoutMs: number,
    onRefused: (code: string) => void,
  ): Promise<number> {
    const mutations = [];
    for (let i = 0; i < count; i++) mutations.push({ seq: this.nextSeq + i, ...build(this.nextSeq + i) });
    for (;;) {
      if (this.closed) return 0;
      const raw: unknown = await this.socket.timeout(timeoutMs).emitWithAck('push', { mutations });
      const ack = pushAckSchema.parse(raw);
      if (ack.ok) {
        this.nextSeq += count;
        return ack.results.filter((r) => r.status === 'applied').length;
      }
      onRefused(ack.error.code);
      if (!ack.error.retryable) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
      const error = isRecord(raw) && isRecord(raw['error']) ? raw['error'] : {};
      const wait = typeof error['retryAfterMs'] === 'number' ? error['retryAfterMs'] : 100;
      await sleep(wait);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.removeAllListeners();
    this.socket.disconnect();
  }
}
