import type { Doc } from '../../shared/json';
import { deepEqual } from '../../shared/json';
import type { Change } from '../../shared/protocol/change';
import type { OutcomeEntry } from '../../server/store/store';

/** Documents by collection, then by id. */
export type DocsView = Record<string, Record<string, Doc>>;

/**
 * Every change the primary ever committed, in LSN order, kept outside the
 * store so that compaction does not hide anything from the checks. With it
 * the checks can rebuild what any user could see at any LSN.
 */
export class ServerHistory {
  readonly changes: Change[] = [];
  /** The head LSN of the log: changes and outcome entries share LSNs. */
  private logHead = 0;
  private readonly versions = new Map<string, Change[]>();
  /** Problems with the commit stream itself (LSNs not consecutive). */
  readonly problems: string[] = [];

  constructor(private readonly collections: readonly string[]) {}

  get head(): number {
    return this.logHead;
  }

  record(changes: readonly Change[], outcomes: readonly OutcomeEntry[] = []): void {
    const lsns = [...changes.map((c) => c.lsn), ...outcomes.map((o) => o.lsn)].sort((a, b) => a - b);
    for (const lsn of lsns) {
      if (lsn !== this.logHead + 1) this.problems.push(`commit of LSN ${lsn} follows LSN ${this.logHead}`);
      this.logHead = lsn;
    }
    for (const c of changes) {
      const copy = structuredClone(c);
      this.changes.push(copy);
      const key = `${c.collection}/${c.id}`;
      const list = this.versions.get(key);
      if (list) list.push(copy);
      else this.versions.set(key, [copy]);
    }
  }

  /** What `userId` may read once every change up to `lsn` is applied; `allOf`: owner-only collections it reads in full. */
  viewAt(lsn: number, userId: string, allOf: readonly string[]): DocsView {
    const view = emptyView(this.collections);
    for (const list of this.versions.values()) {
      let latest: Change | undefined;
      for (const c of list) {
        if (c.lsn > lsn) break;
        latest = c;
      }
      if (!latest || latest.doc === null) continue;
      if (latest.owner !== null && latest.owner !== userId && !allOf.includes(latest.collection)) continue;
      const docs = view[latest.collection];
      if (docs) docs[latest.id] = latest.doc;
    }
    return view;
  }
}

export function emptyView(collections: readonly string[]): DocsView {
  return Object.fromEntries(collections.map((c) => [c, {}]));
}

/** The first few differences between two views, or null when they are equal. */
export function diffViews(actual: DocsView, expected: DocsView, limit = 3): string | null {
  const out: string[] = [];
  const collections = new Set([...Object.keys(actual), ...Object.keys(expected)]);
  for (const c of [...collections].sort()) {
    const a = actual[c] ?? {};
    const e = expected[c] ?? {};
    for (const id of [...new Set([...Object.keys(a), ...Object.keys(e)])].sort()) {
      if (deepEqual(a[id], e[id])) continue;
      out.push(`${c}/${id}: has ${JSON.stringify(a[id] ?? null)}, expected ${JSON.stringify(e[id] ?? null)}`);
      if (out.length >= limit) return out.join('; ') + ' …';
    }
  }
  return out.length === 0 ? null : out.join('; ');
}
