import type { Transport, TransportEvents, TransportFactory } from '../../client/sync/transport';
import type { Session, SessionSink } from '../../server/sync/session';
import type { SyncCore } from '../../server/sync/sync-core';
import { pageAckSchema } from '../../shared/protocol/changes';
import type { Changes, PageAck, Snapshot } from '../../shared/protocol/changes';
import type { Hello } from '../../shared/protocol/hello';
import type { PushAck } from '../../shared/protocol/push';
import type { WireError } from '../../shared/protocol/wire-error';
import type { Rng } from './random';
import type { VirtualClock } from './virtual-clock';

/** What can go wrong on the simulated network. Probabilities are per message or per attempt. */
export interface NetworkFaults {
  minLatencyMs: number;
  maxLatencyMs: number;
  /** A connection attempt fails (the client sees `disconnected` instead of `connected`). */
  connectFailure: number;
  /** Sending a message breaks its connection: the message and everything in flight are lost. */
  cutOnSend: number;
  /** A server→client `changes` or `snapshot` message is delivered a second time, later. */
  duplicate: number;
  duplicateLagMs: number;
  /** An ack (hello/push reply, page ack) is lost while the connection stays up. */
  loseAck: number;
  /** How long each side may take to notice that a connection broke. */
  noticeMaxMs: number;
  /**
   * A live `changes` message still in flight is lost when the next one is
   * sent on the same connection, which stays up: the client receives a
   * message past its checkpoint (a gap) and must catch up.
   */
  dropLive: number;
  /**
   * A push the server answered reaches it again later on the same
   * connection (a retransmission): the primary must answer it from its
   * dedupe record. The client already has its answer and never sees the second.
   */
  duplicatePush: number;
}

export const HEALTHY: NetworkFaults = {
  minLatencyMs: 1,
  maxLatencyMs: 20,
  connectFailure: 0,
  cutOnSend: 0,
  duplicate: 0,
  duplicateLagMs: 0,
  loseAck: 0,
  noticeMaxMs: 0,
  dropLive: 0,
  duplicatePush: 0,
};

type ClientToServer =
  | { kind: 'request'; id: number; event: 'hello' | 'push'; msg: unknown }
  | { kind: 'pageAck'; id: number; res: unknown }
  | { kind: 'fin' };

type ServerToClient =
  | { kind: 'reply'; id: number; res: unknown }
  | { kind: 'changes'; msg: unknown; ackId: number | null }
  | { kind: 'snapshot'; msg: unknown; ackId: number }
  | { kind: 'fatal'; error: unknown }
  | { kind: 'fin' };

/** A node a connection can reach: its core and a name for it in answers and traces. */
export interface SimNode {
  core: SyncCore;
  node: string;
}

/** A message the client was handed, for the checks that watch the wire. */
export type Delivered = { kind: 'changes'; msg: Changes } | { kind: 'snapshot'; msg: Snapshot };

export interface NetworkStats {
  connections: number;
  connectFailures: number;
  cuts: number;
  duplicates: number;
  lostAcks: number;
  /** Live messages lost on a connection that stayed up. */
  droppedLive: number;
  /** Push results answering a mutation the primary had already settled (dedupe ran). */
  duplicatePushes: number;
  messages: number;
}

/** What a primary answered for one mutation, in a push ack it sent (or would have, had the ack not been lost). */
export interface Answer {
  client: string;
  seq: number;
  node: string;
  status: 'applied' | 'duplicate' | 'rejected';
  code: string | null;
}

export interface SimNetworkOptions {
  clock: VirtualClock;
  rng: Rng;
  /** The primary to connect to; `crashServer` swaps in a new one. */
  core: SyncCore;
  /** The name of the node `core` runs on. */
  node: string;
  faults: NetworkFaults;
  /** How long the server waits for a page ack before it gives up on the client (socket-sync: 60 s). */
  pageAckTimeoutMs: number;
  /** Gets each trace line as a thunk, so that untraced runs do not build the strings. */
  log?: (line: () => string) => void;
  /** Sees every changes/snapshot message a client receives, before the engine does. */
  inspect?: (client: string, delivered: Delivered) => void;
  /**
   * Several nodes over one store (`two-nodes`): the node each new connection
   * of `client` reaches. Absent: every connection reaches `core`.
   */
  route?: (client: string) => SimNode;
  /**
   * Several nodes: another live node than `node`, which a retransmitted push
   * may reach instead (a retry the network delivered elsewhere), or null.
   */
  elsewhere?: (node: string) => SimNode | null;
  /** Records a broken invariant of what a node sent (the stream checks below). */
  fail?: (message: string) => void;
}

/** Crosses the wire: what arrives is a copy, with `undefined` fields gone, as with JSON over a socket. */
const wire = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

interface PendingRequest {
  resolve: (res: unknown) => void;
  reject: (err: Error) => void;
  timer: unknown;
}

/**
 * An in-memory network between the client engines and one `SyncCore` (or,
 * with `route`, several nodes over one store, each connection reaching the
 * node `route` picks when it opens). Each
 * connection is two FIFO channels with seeded latency, like one TCP stream:
 * messages reorder only across connections. Faults are seeded too:
 * failed connects, connections that break (both sides notice, each after its
 * own delay, and everything in flight is lost), late duplicates of
 * server→client data messages, and lost acks.
 */
export class SimNetwork {
  faults: NetworkFaults;
  core: SyncCore;
  readonly stats: NetworkStats = {
    connections: 0,
    connectFailures: 0,
    cuts: 0,
    duplicates: 0,
    lostAcks: 0,
    droppedLive: 0,
    duplicatePushes: 0,
    messages: 0,
  };
  /** Every answer a primary gave to a push, for the checks of clear rejection across failovers. */
  readonly answers: Answer[] = [];
  /** A name for the node `core` runs on, for the answers. */
  node: string;
  private nextConnection = 0;
  /** Hellos each client's connections sent to a node so far. */
  private readonly hellos = new Map<string, number>();
  private readonly current = new Map<string, SimConnection>();
  private readonly all = new Set<SimConnection>();

  constructor(readonly opts: SimNetworkOptions) {
    this.faults = opts.faults;
    this.core = opts.core;
    this.node = opts.node;
  }

  /** Whether the client's current connection lost a live message. */
  droppedOnCurrent(client: string): boolean {
    return this.current.get(client)?.droppedLive ?? false;
  }

  /** The transport factory for one client's engine. */
  factoryFor(client: string): TransportFactory {
    return () => {
      const conn = new SimConnection(this, client, ++this.nextConnection);
      this.current.set(client, conn);
      this.all.add(conn);
      this.stats.connections++;
      return conn;
    };
  }

  /** How many hellos `client`'s connections have sent a node so far. */
  hellosOf(client: string): number {
    return this.hellos.get(client) ?? 0;
  }

  /** A connection of `client` sent a node its hello. */
  helloSent(client: string): void {
    this.hellos.set(client, this.hellosOf(client) + 1);
  }

  /** Whether `client` has a connection the server side of `node` still holds open. */
  openOn(client: string, node: string): boolean {
    for (const conn of this.all) if (conn.client === client && conn.isOpenOn(node)) return true;
    return false;
  }

  /**
   * One node's process dies (`two-nodes`): its connections reset as in
   * `crashServer`; the other nodes, and the store they share, go on.
   */
  crashNode(node: string): void {
    for (const conn of this.all) if (conn.isOpenOn(node)) conn.serverDied();
  }

  /** Breaks the client's current connection, if it has one. */
  cut(client: string, reason: string): void {
    this.current.get(client)?.cut(reason);
  }

  /**
   * The primary's process dies: every connection resets (each client notices
   * after its own delay), nothing in flight arrives, and the dead core never
   * hears from the network again. Later connections reach `next`.
   */
  crashServer(next: SyncCore, node = this.node): void {
    for (const conn of this.all) conn.serverDied();
    this.core = next;
    this.node = node;
  }

  latency(): number {
    return this.opts.rng.int(this.faults.minLatencyMs, this.faults.maxLatencyMs);
  }

  log(line: () => string): void {
    const { log, clock } = this.opts;
    if (log) log(() => `[${clock.now()}] ${line()}`);
  }
}

class SimConnection implements Transport {
  private events: TransportEvents | null = null;
  private session: Session | null = null;
  /** The core this connection reached, which may be dead by now. */
  private core: SyncCore | null = null;
  private node = '';
  /** A live message to the client was lost while this connection stayed up. */
  droppedLive = false;
  /** The newest live `changes` message on its way to the client, until it arrives. */
  private liveInFlight: unknown = null;
  /** The client side still sends and receives. */
  private clientOpen = false;
  /** The engine closed this transport: nothing may reach it any more. */
  private clientClosed = false;
  private serverOpen = false;
  private broken = false;
  private lastToServer = 0;
  private lastToClient = 0;
  private nextId = 0;
  private readonly requests = new Map<number, PendingRequest>();
  private readonly pages = new Map<number, PendingRequest>();
  private readonly name: string;
  /** The last hello the server side got, for a push retransmitted to another node. */
  private hello: Hello | null = null;
  /**
   * Where the node's stream to this client has got to: the `to` of the last
   * changes message it sent, or the `asOf` of its last complete snapshot.
   */
  private sentTo: number | null = null;

  constructor(
    private readonly net: SimNetwork,
    readonly client: string,
    id: number,
  ) {
    this.name = `${client}#${id}`;
  }

  // ---- the client's side (Transport) ----

  open(events: TransportEvents): void {
    this.events = events;
    const { clock, rng } = this.net.opts;
    clock.setTimeout(() => {
      if (this.clientClosed) return;
      if (rng.chance(this.net.faults.connectFailure)) {
        this.broken = true;
        this.net.stats.connectFailures++;
        this.net.log(() => `${this.name} connect failed`);
        events.disconnected('connect error');
        return;
      }
      const target = this.net.opts.route?.(this.client) ?? { core: this.net.core, node: this.net.node };
      this.core = target.core;
      this.node = target.node;
      this.session = this.core.connect(this.sink());
      this.serverOpen = true;
      this.clientOpen = true;
      this.net.log(() => `${this.name} connected to ${this.node}`);
      events.connected();
    }, this.net.latency());
  }

  close(): void {
    if (this.clientClosed) return;
    this.clientClosed = true;
    const wasOpen = this.clientOpen;
    this.clientOpen = false;
    this.failRequests('transport closed');
    // Like socket.disconnect(): what was sent before still arrives, then the server sees the close.
    if (wasOpen) this.toServer({ kind: 'fin' });
  }

  request(event: 'hello' | 'push', msg: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.clientOpen) return Promise.reject(new Error(`${event}: not connected`));
    const id = ++this.nextId;
    const { clock } = this.net.opts;
    return new Promise((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        this.requests.delete(id);
        this.net.log(() => `${this.name} ${event} #${id} timed out`);
        reject(new Error(`${event} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.requests.set(id, { resolve, reject, timer });
      this.toServer({ kind: 'request', id, event, msg: wire(msg) });
    });
  }

  /** The link breaks: in-flight messages are lost, and each side notices after its own delay. */
  cut(reason: string): void {
    if (this.broken || (!this.clientOpen && !this.serverOpen)) return;
    this.broken = true;
    this.net.stats.cuts++;
    this.net.log(() => `${this.name} CUT (${reason})`);
    const { clock, rng } = this.net.opts;
    clock.setTimeout(() => this.clientSeesClose('transport close'), rng.int(0, this.net.faults.noticeMaxMs));
    clock.setTimeout(
      () => {
        if (!this.serverOpen) return;
        this.serverSideClosed();
        if (this.session) this.core?.disconnect(this.session);
      },
      rng.int(0, this.net.faults.noticeMaxMs),
    );
  }

  /** Whether this connection reached `node` and that node's side still holds it open. */
  isOpenOn(node: string): boolean {
    return this.serverOpen && this.node === node;
  }

  /** The server process is gone: no goodbye to the core, and its pending pages never settle. */
  serverDied(): void {
    if (!this.serverOpen) return;
    this.serverOpen = false;
    const { clock, rng } = this.net.opts;
    for (const page of this.pages.values()) clock.clearTimeout(page.timer);
    this.pages.clear();
    if (!this.broken) {
      this.broken = true;
      clock.setTimeout(() => this.clientSeesClose('transport close'), rng.int(0, this.net.faults.noticeMaxMs));
    }
  }

  private clientSeesClose(reason: string): void {
    if (!this.clientOpen) return;
    this.clientOpen = false;
    this.failRequests(reason);
    this.net.log(() => `${this.name} client sees disconnect: ${reason}`);
    this.events?.disconnected(reason);
  }

  private failRequests(reason: string): void {
    const { clock } = this.net.opts;
    for (const [id, r] of this.requests) {
      this.requests.delete(id);
      clock.clearTimeout(r.timer);
      r.reject(new Error(reason));
    }
  }

  private sendPageAck(id: number, res: PageAck): void {
    if (!this.clientOpen) return;
    if (this.net.opts.rng.chance(this.net.faults.loseAck)) {
      this.net.stats.lostAcks++;
      this.net.log(() => `${this.name} page ack #${id} LOST`);
      return;
    }
    this.toServer({ kind: 'pageAck', id, res: wire(res) });
  }

  private toServer(msg: ClientToServer): void {
    if (this.broken) return;
    if (msg.kind !== 'fin' && this.net.opts.rng.chance(this.net.faults.cutOnSend)) {
      this.cut(`lost ${msg.kind === 'request' ? msg.event : msg.kind} to server`);
      return;
    }
    const { clock } = this.net.opts;
    const at = Math.max(clock.now() + this.net.latency(), this.lastToServer);
    this.lastToServer = at;
    this.net.stats.messages++;
    clock.setTimeout(() => this.atServer(msg), at - clock.now());
  }

  private atClient(msg: ServerToClient): void {
    if (this.broken || !this.clientOpen) return;
    const events = this.events!;
    switch (msg.kind) {
      case 'reply': {
        const r = this.requests.get(msg.id);
        if (!r) return;
        this.requests.delete(msg.id);
        this.net.opts.clock.clearTimeout(r.timer);
        r.resolve(msg.res);
        return;
      }
      case 'changes': {
        this.net.log(
          () =>
            `${this.name} ← changes ${describeChanges(msg.msg as Changes)}${msg.ackId === null ? '' : ` page #${msg.ackId}`}`,
        );
        this.net.opts.inspect?.(this.client, { kind: 'changes', msg: msg.msg as Changes });
        const ackId = msg.ackId;
        events.changes(msg.msg, ackId === null ? undefined : (res) => this.sendPageAck(ackId, res));
        return;
      }
      case 'snapshot': {
        const snap = msg.msg as Snapshot;
        this.net.log(
          () =>
            `${this.name} ← snapshot asOf ${snap.asOf} page ${snap.page} (${snap.docs.length} docs) done=${snap.done} lastSeq=${snap.lastSeq}`,
        );
        this.net.opts.inspect?.(this.client, { kind: 'snapshot', msg: snap });
        const ackId = msg.ackId;
        events.snapshot(msg.msg, (res) => this.sendPageAck(ackId, res));
        return;
      }
      case 'fatal':
        this.net.log(() => `${this.name} ← fatal ${JSON.stringify(msg.error)}`);
        events.fatal(msg.error);
        return;
      case 'fin':
        this.clientSeesClose('io server disconnect');
        return;
    }
  }

  // ---- the server's side ----

  private sink(): SessionSink {
    return {
      sendChanges: (msg: Changes) => {
        if (!this.serverOpen) return;
        this.checkStream(msg);
        this.toClient({ kind: 'changes', msg: wire(msg), ackId: null });
      },
      sendPage: (msg: Changes) => {
        if (this.serverOpen) this.checkStream(msg);
        return this.sendWithAck('changes', msg);
      },
      sendSnapshot: (msg: Snapshot) => {
        if (this.serverOpen && msg.done) this.checkSnapshot(msg);
        return this.sendWithAck('snapshot', msg);
      },
      close: (error: WireError) => {
        if (!this.serverOpen) return;
        this.net.log(() => `${this.name} server closes: ${error.message}`);
        this.toClient({ kind: 'fatal', error: wire(error) });
        this.toClient({ kind: 'fin' });
        this.serverSideClosed();
      },
    };
  }

  /**
   * What a node sends one connection is one stream in LSN order: each
   * changes message starts where the previous one (or the last snapshot)
   * ended, and holds LSNs ascending within its range. So no LSN of the
   * client's scope is sent twice or out of order on a connection, whichever
   * node sends and whether from a catch-up page, its own commit or the
   * shared log's tail. (The network may still duplicate or lose what was sent.)
   */
  private checkStream(msg: Changes): void {
    const fail = this.net.opts.fail;
    if (!fail) return;
    const where = `${this.node} sent ${this.name} changes ${msg.from}→${msg.to}`;
    if (this.sentTo !== null && msg.from !== this.sentTo) {
      fail(`${where} after its stream had reached ${this.sentTo} (${msg.from < this.sentTo ? 'overlap' : 'gap'})`);
    }
    let prev = msg.from;
    for (const c of msg.changes) {
      if (c.lsn <= prev || c.lsn > msg.to) {
        fail(`${where} holding LSN ${c.lsn} after ${prev} (out of order or out of range)`);
        break;
      }
      prev = c.lsn;
    }
    if (msg.to < msg.from) fail(`${where}: its range runs backwards`);
    this.sentTo = msg.to;
  }

  private checkSnapshot(msg: Snapshot): void {
    const fail = this.net.opts.fail;
    if (fail && this.sentTo !== null && msg.asOf < this.sentTo) {
      fail(`${this.node} sent ${this.name} a snapshot as of ${msg.asOf} after its stream had reached ${this.sentTo}`);
    }
    this.sentTo = msg.asOf;
  }

  private sendWithAck(kind: 'changes' | 'snapshot', msg: Changes | Snapshot): Promise<void> {
    if (!this.serverOpen) return Promise.reject(new Error('connection closed'));
    const id = ++this.nextId;
    const { clock } = this.net.opts;
    return new Promise<void>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        this.pages.delete(id);
        this.net.log(() => `${this.name} server: ${kind} page #${id} ack timed out`);
        reject(new Error(`client did not ack the ${kind} page in time`));
      }, this.net.opts.pageAckTimeoutMs);
      this.pages.set(id, {
        resolve: (res) => {
          const parsed = pageAckSchema.safeParse(res);
          if (parsed.success && parsed.data.ok) resolve();
          else reject(new Error(`client did not apply the ${kind} page`));
        },
        reject,
        timer,
      });
      this.toClient({ kind, msg: wire(msg), ackId: id });
    });
  }

  private atServer(msg: ClientToServer): void {
    if (this.broken || !this.serverOpen || !this.session) return;
    const { clock } = this.net.opts;
    const core = this.core!;
    const session = this.session;
    switch (msg.kind) {
      case 'request':
        if (msg.event === 'hello') {
          this.hello = msg.msg as Hello;
          this.net.helloSent(this.client);
          void core.hello(session, msg.msg).then((res) => {
            this.net.log(() => `${this.name} → hello ${JSON.stringify(msg.msg)} → ${JSON.stringify(res)}`);
            this.reply(msg.id, res);
          });
        } else {
          this.net.log(() => `${this.name} → push ${describePush(msg.msg)}`);
          const id = msg.id;
          const node = this.node;
          void core.push(session, msg.msg).then((res) => {
            this.net.log(() => `${this.name} push #${id} → ${JSON.stringify(res)}`);
            this.recordAnswers(node, res);
            if (id < 0) return; // a retransmission: its answer goes nowhere
            this.reply(id, res);
            if (this.net.opts.rng.chance(this.net.faults.duplicatePush)) {
              const { rng, elsewhere } = this.net.opts;
              const lag = rng.int(0, this.net.faults.duplicateLagMs);
              const other = elsewhere && rng.chance(0.5) ? elsewhere(node) : null;
              const hellos = this.net.hellosOf(this.client);
              this.net.log(
                () => `${this.name} will deliver push #${id} again in ${lag} ms${other ? ` to ${other.node}` : ''}`,
              );
              clock.setTimeout(
                () => (other ? this.retransmitTo(other, msg.msg, hellos) : this.atServer({ ...msg, id: -1 })),
                lag,
              );
            }
          });
        }
        return;
      case 'pageAck': {
        const page = this.pages.get(msg.id);
        if (!page) return; // a duplicate's ack, or too late
        this.pages.delete(msg.id);
        clock.clearTimeout(page.timer);
        page.resolve(msg.res);
        return;
      }
      case 'fin':
        this.net.log(() => `${this.name} server sees the client close`);
        this.serverSideClosed();
        core.disconnect(session);
        return;
    }
  }

  /**
   * A push this connection sent reaches another node, as a retry would that
   * a load balancer routed there: on a connection of its own, which says the
   * client's hello (with a checkpoint at what that node has fanned out, so
   * it has nothing to catch up on) and then the push. Its answers go nowhere.
   * Skipped when the client holds a connection to that node: the ghost's
   * hello would supersede it, which no real retry does to a live connection.
   * Its answers count only if the client has said no newer hello since the
   * push was answered (`hellos`, the count then): a
   * newer one settles the seqs below its pendingFrom and lets the node forget
   * their rejections, after which a late copy of an old push is answered
   * `duplicate` with no error (which nobody hears).
   */
  private retransmitTo(target: SimNode, push: unknown, hellos: number): void {
    const hello = this.hello;
    const { core, node } = target;
    if (hello === null || this.net.openOn(this.client, node)) return;
    const ignore = (): Promise<void> => Promise.resolve();
    const session = core.connect({
      sendChanges: () => undefined,
      sendPage: ignore,
      sendSnapshot: ignore,
      close: () => undefined,
    });
    const ghost = `${this.name}→${node}`;
    void core
      .hello(session, { ...hello, checkpoint: core.fannedOutLsn })
      .then(async (ack) => {
        if (!ack.ok) {
          this.net.log(() => `${ghost} retransmission's hello refused: ${JSON.stringify(ack.error)}`);
          return;
        }
        this.net.log(() => `${ghost} → push ${describePush(push)} (retransmitted)`);
        const res = await core.push(session, push);
        const stale = this.net.hellosOf(this.client) !== hellos;
        this.net.log(
          () => `${ghost} push → ${JSON.stringify(res)}${stale ? ' (after a newer hello: not counted)' : ''}`,
        );
        if (!stale) this.recordAnswers(node, res);
      })
      .finally(() => core.disconnect(session));
  }

  private recordAnswers(node: string, res: PushAck): void {
    if (!res.ok) return;
    for (const r of res.results) {
      if (r.status === 'duplicate') this.net.stats.duplicatePushes++;
      // An out-of-order seq is not an outcome: nothing was recorded, and the client sends the missing seqs first.
      if (r.status === 'rejected' && r.error.code === 'BAD_REQUEST' && r.error.retryable) continue;
      const error = r.status === 'applied' ? undefined : r.error;
      this.net.answers.push({ client: this.client, seq: r.seq, node, status: r.status, code: error?.code ?? null });
    }
  }

  private reply(id: number, res: unknown): void {
    if (!this.serverOpen) return;
    if (this.net.opts.rng.chance(this.net.faults.loseAck)) {
      this.net.stats.lostAcks++;
      this.net.log(() => `${this.name} reply #${id} LOST`);
      return;
    }
    this.toClient({ kind: 'reply', id, res: wire(res) });
  }

  private serverSideClosed(): void {
    this.serverOpen = false;
    const { clock } = this.net.opts;
    for (const [id, page] of this.pages) {
      this.pages.delete(id);
      clock.clearTimeout(page.timer);
      page.reject(new Error('connection closed'));
    }
  }

  private toClient(msg: ServerToClient): void {
    if (this.broken) return;
    const { rng, clock } = this.net.opts;
    if (msg.kind !== 'fin' && rng.chance(this.net.faults.cutOnSend)) {
      this.cut(`lost ${msg.kind} to client`);
      return;
    }
    if (msg.kind === 'changes' && msg.ackId === null) {
      // The previous live message is still on its way: lose it, and the client gets this one past its checkpoint.
      if (this.liveInFlight !== null && rng.chance(this.net.faults.dropLive)) {
        clock.clearTimeout(this.liveInFlight);
        this.droppedLive = true;
        this.net.stats.droppedLive++;
        this.net.log(() => `${this.name} DROPPED the live message before ${describeChanges(msg.msg as Changes)}`);
      }
      const timer = this.enqueueToClient(msg, () => {
        if (this.liveInFlight === timer) this.liveInFlight = null;
      });
      this.liveInFlight = timer;
    } else {
      this.enqueueToClient(msg);
    }
    if ((msg.kind === 'changes' || msg.kind === 'snapshot') && rng.chance(this.net.faults.duplicate)) {
      this.net.stats.duplicates++;
      clock.setTimeout(
        () => {
          this.net.log(() => `${this.name} duplicating a ${msg.kind} message`);
          if (!this.broken) this.enqueueToClient(msg);
        },
        rng.int(0, this.net.faults.duplicateLagMs),
      );
    }
  }

  private enqueueToClient(msg: ServerToClient, arrived?: () => void): unknown {
    const { clock } = this.net.opts;
    const at = Math.max(clock.now() + this.net.latency(), this.lastToClient);
    this.lastToClient = at;
    this.net.stats.messages++;
    return clock.setTimeout(() => {
      arrived?.();
      this.atClient(msg);
    }, at - clock.now());
  }
}

function describeChanges(msg: Changes): string {
  const lsns = msg.changes.map((c) => `${c.lsn}:${c.collection}/${c.id}${c.doc === null ? '(del)' : ''}`).join(' ');
  const outcome = msg.lastSeq === undefined ? '' : ` lastSeq=${msg.lastSeq}`;
  const rejected = msg.rejected?.length ? ` rejected=[${msg.rejected.map((r) => r.seq).join(',')}]` : '';
  return `${msg.from}→${msg.to} [${lsns}]${outcome}${rejected}`;
}

function describePush(raw: unknown): string {
  const mutations = (raw as { mutations?: Array<{ seq: number; name: string }> }).mutations ?? [];
  return mutations.map((m) => `${m.seq}:${m.name}`).join(' ');
}
