/**
 * How many mutations wait in the outbox, kept without counting it after
 * every write.
 *
 * Local writes add to it and confirmed changes take from it (deltas); a
 * connection and a tab's "I queued something" recount it (absolute counts).
 * Each of these happens in a local transaction, and transactions that touch
 * the outbox run one after another in the order they were created
 * (IndexedDB orders overlapping transactions that way; the memory store
 * takes a lock in call order). But the engine learns their results later,
 * after awaits, in any order: a count read before a batch committed may
 * arrive after that batch's delta was added, and assigning it then would
 * forget the batch (the status went negative under a steady write stream).
 *
 * So every such transaction takes a stamp first thing inside its callback
 * (its place in the commit order), and each result is placed by its stamp:
 * a delta older than the latest count applied is already in it; a count
 * gets the deltas newer than it added on top.
 */
export class PendingCount {
  private value = 0;
  private nextStamp = 1;
  /** Stamp of the newest absolute count applied (0: none yet). */
  private countedAt = 0;
  /** Counts taken but not yet applied: while there are any, deltas are kept to add on top of them. */
  private readonly open = new Set<number>();
  private deltas: Array<{ stamp: number; delta: number }> = [];

  get current(): number {
    return this.value;
  }

  /** For a transaction that changes the outbox: call first thing inside it. */
  stamp(): number {
    return this.nextStamp++;
  }

  /** For a transaction that counts the outbox: call first thing inside it. */
  countStamp(): number {
    const stamp = this.nextStamp++;
    this.open.add(stamp);
    return stamp;
  }

  /** The transaction with `stamp` changed the outbox by `delta` (and committed). */
  add(stamp: number, delta: number): void {
    if (stamp < this.countedAt) return; // a newer count already holds it
    this.value += delta;
    if (this.open.size > 0) this.deltas.push({ stamp, delta });
  }

  /** The transaction with `stamp` counted `count` entries (and committed). */
  counted(stamp: number, count: number): void {
    this.open.delete(stamp);
    if (stamp > this.countedAt) {
      this.countedAt = stamp;
      this.value = count + this.deltas.reduce((sum, d) => (d.stamp > stamp ? sum + d.delta : sum), 0);
    }
    this.prune();
  }

  /** The counting transaction with `stamp` failed: its count will never come. */
  abandon(stamp: number): void {
    this.open.delete(stamp);
    this.prune();
  }

  private prune(): void {
    if (this.open.size === 0) {
      this.deltas = [];
      return;
    }
    const oldest = Math.min(...this.open);
    this.deltas = this.deltas.filter((d) => d.stamp > oldest);
  }
}
