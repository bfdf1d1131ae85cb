import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { tokenFor } from '../../test/support/node-client';
import { readChanges } from '../raw-client';
import type { SeenChanges } from '../raw-client';
import { nowMs } from '../stats';

/**
 * The lightest /sync receiver the bench has: one `ws` WebSocket speaking
 * engine.io 4 / Socket.IO 5 framing by hand (open, namespace connect, ping →
 * pong, event and ack packets), saying hello and then only reading `changes`
 * (acking catch-up pages). No socket.io-client, no validation: a receipt
 * costs a WebSocket frame and one JSON.parse, so thousands of them on the
 * bench's machine measure the server rather than themselves. (`ws` is the
 * WebSocket library socket.io itself installs.)
 */

const NSP = '/sync';
const EVENT = `42${NSP},`;
const ACK = `43${NSP},`;

export class LightReceiver {
  readonly clientId = `bench-${randomBytes(9).toString('hex')}`;
  live = false;
  private readonly liveWaiters: Array<() => void> = [];

  private constructor(private readonly ws: WebSocket) {}

  /** Connects as `userId` (checkpoint 0) and resolves once the hello was acked. */
  static connect(url: string, userId: string, onChanges: (msg: SeenChanges) => void): Promise<LightReceiver> {
    const wsUrl = `${url.replace(/^http/, 'ws').replace(/\/$/, '')}/socket.io/?EIO=4&transport=websocket`;
    const ws = new WebSocket(wsUrl);
    const r = new LightReceiver(ws);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${userId}: no hello ack within 30 s`)), 30_000);
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      ws.on('message', (data: WebSocket.RawData) => {
        const receivedAt = nowMs();
        const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        const text = bytes.toString();
        if (text === '2') return ws.send('3');
        if (text.startsWith('0')) return ws.send(`40${NSP},`);
        if (text.startsWith(`40${NSP},`)) {
          const hello = {
            protocol: PROTOCOL_VERSION,
            clientId: r.clientId,
            token: tokenFor(userId),
            checkpoint: 0,
            checkpointTerm: 0,
            pendingFrom: 1,
          };
          return ws.send(`${EVENT}1${JSON.stringify(['hello', hello])}`);
        }
        if (text.startsWith(ACK)) {
          const [ack] = JSON.parse(text.slice(ACK.length).replace(/^\d+/, '')) as [{ ok: boolean }];
          clearTimeout(timer);
          if (ack.ok) resolve(r);
          else reject(new Error(`${userId}: hello refused: ${JSON.stringify(ack)}`));
          return;
        }
        if (!text.startsWith(EVENT)) return;
        const rest = text.slice(EVENT.length);
        const digits = /^\d*/.exec(rest)![0];
        const [event, payload] = JSON.parse(rest.slice(digits.length)) as [string, unknown];
        if (event !== 'changes' && event !== 'snapshot') return;
        if (digits !== '') ws.send(`${ACK}${digits}${JSON.stringify([{ ok: true }])}`);
        if (event !== 'changes') return;
        const msg = readChanges(payload, digits !== '', receivedAt);
        if (msg) onChanges(msg);
        if (digits === '' && !r.live) {
          r.live = true;
          for (const w of r.liveWaiters.splice(0)) w();
        }
      });
    });
  }

  /** Resolves once the server has switched this receiver to live changes. */
  waitLive(timeoutMs = 60_000): Promise<void> {
    if (this.live) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.clientId} not live after ${timeoutMs} ms`)), timeoutMs);
      this.liveWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.ws.terminate();
  }
}
