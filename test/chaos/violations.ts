/** The nine guarantees of shared/DESIGN.md, and what broke each one in a run. */
export const GUARANTEES = {
  1: 'durable acks',
  2: 'exactly once',
  3: 'atomic',
  4: 'per-client order',
  5: 'convergence',
  6: 'local first',
  7: 'clear rejection',
  8: 'monotonic reads',
  9: 'isolation',
} as const;

export type Guarantee = keyof typeof GUARANTEES;

/** Keeps a count per guarantee and the first few messages of each, so a bad run prints what, not only how many. */
export class Violations {
  private readonly counts = new Map<Guarantee, number>();
  private readonly samples = new Map<Guarantee, string[]>();

  add(g: Guarantee, message: string): void {
    this.counts.set(g, (this.counts.get(g) ?? 0) + 1);
    const list = this.samples.get(g) ?? [];
    if (list.length < 8) list.push(message);
    this.samples.set(g, list);
  }

  count(g: Guarantee): number {
    return this.counts.get(g) ?? 0;
  }

  total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  examples(g: Guarantee): readonly string[] {
    return this.samples.get(g) ?? [];
  }
}
