/**
 * At most `capacity` holders at a time; the others wait in arrival order. A
 * snapshot holds a read transaction and a page in memory while it waits for
 * its client's acks, so a node serves a bounded number at once and the rest
 * queue (they are not refused: each waiter is an admitted session, so the
 * queue is bounded by the sessions a node admits).
 */
export class SnapshotGate {
  private held = 0;
  private readonly waiting: Array<{ key: object; admit: (entered: boolean) => void }> = [];

  constructor(private readonly capacity: number) {}

  /**
   * Resolves true once `key` holds a place (it must `release` it), or false
   * when `leave(key)` came first (it holds nothing).
   */
  enter(key: object): Promise<boolean> {
    if (this.held < this.capacity && this.waiting.length === 0) {
      this.held++;
      return Promise.resolve(true);
    }
    return new Promise((admit) => this.waiting.push({ key, admit }));
  }

  /** Gives a place back; the longest waiter takes it. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next.admit(true);
    else this.held = Math.max(0, this.held - 1);
  }

  /** Takes `key` out of the queue (its session closed while waiting). */
  leave(key: object): void {
    const i = this.waiting.findIndex((w) => w.key === key);
    if (i >= 0) this.waiting.splice(i, 1)[0]!.admit(false);
  }

  /** Places held now, and callers waiting for one. */
  get stats(): { held: number; waiting: number } {
    return { held: this.held, waiting: this.waiting.length };
  }
}
