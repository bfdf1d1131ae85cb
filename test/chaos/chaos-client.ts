import { open } from '../../client/lib/open';
import type { RejectionRecord } from '../../client/sync/local-store';
import { storeSchema } from '../../shared/apps/store';
import type { JsonValue } from '../../shared/json';
import type { WireError } from '../../shared/protocol/wire-error';
import { tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { FaultyNetwork } from './fault-transport';
import type { Rng } from '../sim/random';
import { watchCounters } from './visible-recorder';
import type { Violations } from './violations';

export const COUNTERS = ['counter-0', 'counter-1', 'counter-2', 'counter-3'] as const;
export const isCounter = (id: string): boolean => id.startsWith('counter-');

/** Shared by all clients: how much has been added to each counter so far, by anyone (the upper bound of what anyone may see). */
export class CounterBook {
  readonly issued = new Map<string, number>(COUNTERS.map((c) => [c, 0]));
  add(counter: string, by: number): void {
    this.issued.set(counter, (this.issued.get(counter) ?? 0) + by);
  }
}

export interface Issued {
  name: string;
  args: JsonValue;
}

/**
 * One real client library instance (`open()` on fake-indexeddb) under chaos,
 * with everything the checks need: what it issued, what the wire told it,
 * what it reported, and every value its user could see.
 */
export class ChaosClient {
  db: NodeClient | null = null;
  clientId = '';
  readonly net: FaultyNetwork;
  /** Every mutation `mutate` accepted, by seq. */
  readonly issued = new Map<number, Issued>();
  /** What push acks said about each seq (every answer, in arrival order). */
  readonly wire = new Map<number, Array<WireError | null>>();
  readonly rejectedEvents: RejectionRecord[] = [];
  localRefusals = 0;
  reopens = 0;
  private lastCheckpoint = 0;
  private readonly seen = new Map<string, number | null>();
  private chain: Promise<unknown> = Promise.resolve();
  private unwatch: (() => void) | null = null;

  constructor(
    readonly name: string,
    readonly userId: string,
    readonly roles: string[],
    private readonly servers: readonly string[],
    private readonly book: CounterBook,
    private readonly violations: Violations,
    rng: Rng,
  ) {
    this.net = new FaultyNetwork(
      (outcomes) => {
        for (const o of outcomes) {
          const list = this.wire.get(o.seq);
          if (list) list.push(o.error);
          else this.wire.set(o.seq, [o.error]);
        }
      },
      () => rng.float(),
    );
  }

  get dbName(): string {
    return `chaos-${process.pid}-${this.name}`;
  }

  /** Runs `fn` after whatever this client is doing (a mutation or a reopen), never beside it. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  async open(): Promise<void> {
    this.unwatch = watchCounters(this.dbName, 'notes', isCounter, 'n', (values) => {
      for (const v of values) this.observe(v.counter, v.value);
    });
    const db = await open(storeSchema, {
      servers: [...this.servers],
      token: tokenFor(this.userId, this.roles),
      dbName: this.dbName,
      connect: this.net.factory,
      requestTimeoutMs: 2_000,
    });
    this.db = db;
    this.clientId = db.engine.clientId ?? '';
    const meta = db.status().lastSyncedLsn;
    this.checkCheckpoint(meta, 'after reopen');
    db.on((e) => {
      if (e.type === 'applied') this.checkCheckpoint(e.checkpoint, 'applied');
      if (e.type === 'rejected') this.rejectedEvents.push(e.rejection);
    });
  }

  /** Closes the database and opens it again on the same IndexedDB (a page reload). */
  reopen(): Promise<void> {
    return this.serial(async () => {
      this.close();
      this.reopens++;
      await this.open();
    });
  }

  close(): void {
    this.db?.close();
    this.db = null;
    this.unwatch?.();
    this.unwatch = null;
  }

  /**
   * Issues one mutation. Returns its seq, or null when the library refused it
   * outright (invalid whatever the data: nothing is stored).
   */
  async mutate(name: string, args: JsonValue): Promise<number | null> {
    const db = this.db;
    if (!db) throw new Error(`${this.name} is closed`);
    try {
      const { seq } = await (db.mutate as unknown as Record<string, (a: JsonValue) => Promise<{ seq: number }>>)[name]!(
        args,
      );
      this.issued.set(seq, { name, args });
      return seq;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'FORBIDDEN') throw err;
      this.localRefusals++;
      return null;
    }
  }

  /** Counter values the user saw: they only ever rise, and never above what everyone added so far. */
  private observe(counter: string, value: number | null): void {
    const before = this.seen.get(counter);
    this.seen.set(counter, value);
    const bound = this.book.issued.get(counter) ?? 0;
    if (value !== null && value > bound) {
      this.violations.add(
        6,
        `${this.name} saw ${counter} = ${value}, above the ${bound} added so far by anyone (counted twice)`,
      );
    }
    if (before !== undefined && before !== null && (value === null || value < before)) {
      const msg = `${this.name} saw ${counter} go from ${before} to ${value ?? 'absent'}`;
      this.violations.add(6, msg);
      this.violations.add(8, msg);
    }
  }

  private checkCheckpoint(checkpoint: number, when: string): void {
    if (checkpoint < this.lastCheckpoint) {
      this.violations.add(
        8,
        `${this.name}'s checkpoint went back from ${this.lastCheckpoint} to ${checkpoint} (${when})`,
      );
    }
    this.lastCheckpoint = Math.max(this.lastCheckpoint, checkpoint);
  }
}
