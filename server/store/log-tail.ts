import type { LogPage } from './store';

/** Where a tail reads: `AsyncStore.readLog`, or anything that pages the log the same way. */
export interface LogSource {
  readLog(after: number, limit: number, maxBytes?: number): Promise<LogPage>;
}

export interface LogTailOptions {
  source: LogSource;
  /** The checkpoint to read after: the last LSN already delivered (0 for the whole log). */
  from: number;
  pageSize: number;
  pageBytes?: number;
  /** Gets each page in LSN order, from the checkpoint on; the next read waits for it to settle. */
  onPage: (page: LogPage) => void | Promise<void>;
  /**
   * A read (or `onPage`) failed: the tail stops until the next `wake` (one
   * that came during the failed pass counts), which retries from the checkpoint.
   */
  onError: (err: unknown) => void;
}

/**
 * Follows a shared log by LSN from a checkpoint: what a node on PostgreSQL
 * runs to hear of every commit, its own and other nodes' (issue 11, fan-out
 * across nodes). A wake-up (NOTIFY, a local commit, a timer) is only a hint:
 * the tail reads pages after its checkpoint until one comes back empty, so
 * it never skips an entry and never delivers one twice, however wake-ups
 * are lost, merged or early. A wake-up while it reads makes it read once
 * more after the current pass, so no commit can fall between its last read
 * and the end of the pass.
 *
 * Gap-free only over a store that makes LSNs visible in order (PgStore's
 * head lock, a single SQLite writer): the tail trusts that when it reads
 * LSN n, nothing below n is still to commit.
 */
export class LogTail {
  private at: number;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly waiters: Array<{ lsn: number; resolve: () => void }> = [];

  constructor(private readonly opts: LogTailOptions) {
    this.at = opts.from;
  }

  /**
   * Moves the checkpoint before the first read: a node that learns the head
   * only after making its tail starts there (what came before, its clients
   * catch up on from the log themselves).
   */
  startAt(lsn: number): void {
    if (this.running !== null) throw new Error('LogTail.startAt after the tail started reading');
    this.at = lsn;
  }

  /** The last LSN delivered. */
  get checkpoint(): number {
    return this.at;
  }

  /** Reads what is new (now, or after the pass in progress). */
  wake(): void {
    if (this.stopped) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = null;
    });
  }

  /** Resolves once every entry up to `lsn` has been delivered (wakes the tail). */
  reached(lsn: number): Promise<void> {
    if (this.at >= lsn) return Promise.resolve();
    const wait = new Promise<void>((resolve) => this.waiters.push({ lsn, resolve }));
    this.wake();
    return wait;
  }

  /** Stops reading; a pass in progress ends after its current page. */
  stop(): void {
    this.stopped = true;
  }

  /** Passes until one ends with no wake-up during it; a failed pass is reported, and a wake-up during it retries. */
  private async drain(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.pass();
      } catch (err) {
        this.opts.onError(err);
      }
    } while (this.again && !this.stopped);
  }

  /** Reads and delivers pages after the checkpoint until one comes back empty. */
  private async pass(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const page = await this.opts.source.readLog(this.at, this.opts.pageSize, this.opts.pageBytes);
      if (page.to <= this.at) return;
      await this.opts.onPage(page);
      this.at = page.to;
      this.settleWaiters();
    }
  }

  private settleWaiters(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (this.at >= w.lsn) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }
}
