import { socketTransport } from '../../client/sync/socket-transport';
import type { Transport, TransportEvents, TransportFactory } from '../../client/sync/transport';
import { pushAckSchema } from '../../shared/protocol/push';
import type { WireError } from '../../shared/protocol/wire-error';

/** What the server told a client about one of its mutations, as seen on the wire (before any fault drops it). */
export interface WireOutcome {
  seq: number;
  /** null: committed (applied, or a duplicate of a commit). */
  error: WireError | null;
}

/**
 * The faults one client's network can suffer, switched by the chaos driver.
 * All of them act on the real Socket.IO transport the client library uses.
 */
export class FaultyNetwork {
  /** While set, new connections fail at once (the machine is offline). */
  offline = false;
  /** Probability that a push ack is dropped after the server sent it (the client times out and retries). */
  lostAckRate = 0;
  /** Probability that a push reaches the server twice (a redelivery); the second copy must change nothing. */
  redeliveryRate = 0;
  reconnects = 0;
  lostAcks = 0;
  redelivered = 0;
  /** Seqs that a redelivered push committed a second time (the server's dedupe failed). */
  readonly reapplied: number[] = [];
  private current: FaultyConnection | null = null;

  constructor(
    private readonly onOutcomes: (outcomes: readonly WireOutcome[]) => void,
    private readonly random: () => number,
  ) {}

  readonly factory: TransportFactory = (url: string): Transport => {
    const conn = new FaultyConnection(socketTransport(url), this);
    this.current = conn;
    return conn;
  };

  /** Closes the connection from this side, as a network cut would. */
  cut(): void {
    this.current?.cut('chaos: connection cut');
  }

  /** Stops delivering in both directions without closing; the client finds out after `detectMs` (a ping timeout). */
  halfOpen(detectMs: number): void {
    this.current?.halfOpen(detectMs);
  }

  /** Ends every fault: back online, no lost acks, and a frozen socket is closed so the client reconnects. */
  heal(): void {
    this.offline = false;
    this.lostAckRate = 0;
    this.redeliveryRate = 0;
    if (this.current?.isFrozen()) this.cut();
  }

  /** @internal */
  outcomes(outcomes: readonly WireOutcome[]): void {
    this.onOutcomes(outcomes);
  }

  /** @internal */
  redeliver(): boolean {
    if (this.redeliveryRate <= 0 || this.random() >= this.redeliveryRate) return false;
    this.redelivered++;
    return true;
  }

  /** @internal */
  dropAck(): boolean {
    if (this.lostAckRate <= 0 || this.random() >= this.lostAckRate) return false;
    this.lostAcks++;
    return true;
  }
}

/**
 * One connection attempt. Keeps the Transport contract (after `disconnected`
 * nothing more fires), whatever fault ends it.
 */
class FaultyConnection implements Transport {
  private events: TransportEvents | null = null;
  private over = false;
  /** Half-open: nothing is delivered either way, and requests hang until their timeout. */
  private frozen = false;
  private detectTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly inner: Transport,
    private readonly net: FaultyNetwork,
  ) {}

  open(events: TransportEvents): void {
    this.events = events;
    if (this.net.offline) {
      // Report asynchronously, as a real failed connect would.
      queueMicrotask(() => this.end('chaos: offline'));
      return;
    }
    this.inner.open({
      connected: () => {
        if (this.over || this.frozen) return;
        this.net.reconnects++;
        events.connected();
      },
      disconnected: (reason) => this.end(reason),
      changes: (msg, ack) => {
        if (!this.over && !this.frozen) events.changes(msg, ack);
      },
      snapshot: (msg, ack) => {
        if (!this.over && !this.frozen) events.snapshot(msg, ack);
      },
      fatal: (msg) => {
        if (!this.over && !this.frozen) events.fatal(msg);
      },
    });
  }

  close(): void {
    this.over = true;
    this.clearDetect();
    this.inner.close();
  }

  async request(event: 'hello' | 'push', msg: unknown, timeoutMs: number): Promise<unknown> {
    if (this.frozen) return this.hang(timeoutMs);
    const res = await this.inner.request(event, msg, timeoutMs);
    if (event === 'push') {
      const ack = pushAckSchema.safeParse(res);
      if (ack.success && ack.data.ok) {
        this.net.outcomes(
          ack.data.results.map((r) => ({
            seq: r.seq,
            error: r.status === 'applied' ? null : r.status === 'duplicate' ? (r.error ?? null) : r.error,
          })),
        );
      }
      if (this.net.redeliver()) await this.redeliver(msg, timeoutMs);
      // The server answered, but the answer never arrives: the client sees a timeout.
      if (this.net.dropAck()) throw new Error('chaos: push ack lost');
    }
    if (this.frozen) return this.hang(timeoutMs);
    return res;
  }

  cut(reason: string): void {
    this.end(reason);
  }

  /** Sends the same push again on the same socket, after its answer (one push in flight): all of it is a duplicate now. */
  private async redeliver(msg: unknown, timeoutMs: number): Promise<void> {
    const again = pushAckSchema.safeParse(await this.inner.request('push', msg, timeoutMs).catch(() => null));
    if (!again.success || !again.data.ok) return;
    for (const r of again.data.results) if (r.status === 'applied') this.net.reapplied.push(r.seq);
  }

  isFrozen(): boolean {
    return this.frozen && !this.over;
  }

  halfOpen(detectMs: number): void {
    if (this.over || this.frozen) return;
    this.frozen = true;
    this.detectTimer = setTimeout(() => this.end('chaos: half-open socket detected (ping timeout)'), detectMs);
  }

  private hang(timeoutMs: number): Promise<never> {
    return new Promise((_resolve, reject) => setTimeout(() => reject(new Error('operation has timed out')), timeoutMs));
  }

  private end(reason: string): void {
    if (this.over) return;
    this.over = true;
    this.clearDetect();
    this.inner.close();
    this.events?.disconnected(reason);
  }

  private clearDetect(): void {
    if (this.detectTimer !== null) clearTimeout(this.detectTimer);
    this.detectTimer = null;
  }
}
