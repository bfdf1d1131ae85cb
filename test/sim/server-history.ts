import type { Doc } from '../../shared/json';
import { deepEqual } from '../../shared/json';
import type { Change } from '../../shared/protocol/change';

/** Documents by collection, then by id. */
export type DocsView = Record<string, Record<string, Doc>>;

/**
 * A log entry for the outcome of a mutation that wrote no document (a
 * rejection or a no-op), with an LSN of its own: the store's `OutcomeEntry`.
 */
export interface LoggedOutcome {
  lsn: number;
  term: number;
  clientId: string;
  seq: number;
  error: { code: string } | null;
}

/** What the checks need of any log entry of one client: where it is, and which seq it settles. */
type Settling = Pick<LoggedOutcome, 'lsn' | 'term' | 'seq'>;

/**
 * Every change any primary ever committed, kept outside the stores so that
 * compaction and failover hide nothing from the checks. With it the checks
 * can rebuild what any user could see at any LSN of any term's log.
 *
 * After a failover the logs fork: the promoted node's log (term T) shares
 * the old primary's up to the LSN it had when promoted, and the old
 * primary's changes past that point are in no later log. A change of term
 * `t` is in the log of term `T >= t` when `t === T` or when its LSN is at or
 * below the start of every term after `t` up to `T`.
 */
export class ServerHistory {
  /** Every change recorded, of every term, in recording order. */
  readonly all: Change[] = [];
  /** Problems with the commit stream itself (LSNs not consecutive in a term's log). */
  readonly problems: string[] = [];
  private readonly versions = new Map<string, Change[]>();
  /** Each client's own log entries (changes and outcomes), in recording order. */
  private readonly byClient = new Map<string, Settling[]>();
  /** Every outcome entry recorded, of every term. */
  readonly outcomes: LoggedOutcome[] = [];
  /** Term starts: term T's first change has LSN `startLsn + 1`. */
  private readonly starts: Array<{ term: number; startLsn: number }> = [{ term: 1, startLsn: 0 }];
  private readonly heads = new Map<number, number>([[1, 0]]);
  private memo: { key: string; view: DocsView } | null = null;

  constructor(private readonly collections: readonly string[]) {}

  /** The newest term. */
  get term(): number {
    return this.starts[this.starts.length - 1]!.term;
  }

  /** The head of the newest term's log. */
  get head(): number {
    return this.heads.get(this.term) ?? 0;
  }

  /** The log of the newest term (what the final primary holds), in LSN order. */
  get changes(): Change[] {
    return this.all.filter((c) => this.inLog(c, this.term)).sort((a, b) => a.lsn - b.lsn);
  }

  /** A replica whose head was `startLsn` became the primary of `term`. */
  promote(term: number, startLsn: number): void {
    this.starts.push({ term, startLsn });
    this.heads.set(term, startLsn);
    this.memo = null;
  }

  /**
   * Records a commit: its document changes and the outcome entries of
   * mutations that wrote nothing. Together their LSNs are consecutive after
   * the head of the committing term's log.
   */
  record(changes: readonly Change[], outcomes: readonly LoggedOutcome[] = []): void {
    this.memo = null;
    const entries = [...changes, ...outcomes].sort((a, b) => a.lsn - b.lsn);
    for (const e of entries) {
      const head = this.heads.get(e.term);
      if (head === undefined) this.problems.push(`commit of LSN ${e.lsn} in unknown term ${e.term}`);
      else if (e.lsn !== head + 1) this.problems.push(`commit of LSN ${e.lsn} follows LSN ${head} in term ${e.term}`);
      this.heads.set(e.term, e.lsn);
    }
    for (const o of outcomes) {
      const copy = structuredClone(o);
      this.outcomes.push(copy);
      this.own(o.clientId, copy);
    }
    for (const c of changes) {
      const copy = structuredClone(c);
      this.all.push(copy);
      const key = `${c.collection}/${c.id}`;
      const list = this.versions.get(key);
      if (list) list.push(copy);
      else this.versions.set(key, [copy]);
      if (c.clientId !== null && c.seq !== null) this.own(c.clientId, { lsn: c.lsn, term: c.term, seq: c.seq });
    }
  }

  private own(clientId: string, entry: Settling): void {
    const list = this.byClient.get(clientId);
    if (list) list.push(entry);
    else this.byClient.set(clientId, [entry]);
  }

  /**
   * The highest seq of `clientId` with a log entry (a change, or an
   * outcome that wrote nothing) at or below `lsn` in term `term`'s log. Seqs
   * settle in order, so every seq up to it is settled there: a client at
   * that checkpoint has nothing up to it still pending.
   */
  settledSeq(clientId: string, lsn: number, term = this.term): number {
    let max = 0;
    for (const e of this.byClient.get(clientId) ?? []) {
      if (e.lsn <= lsn && e.seq > max && this.inLog(e, term)) max = e.seq;
    }
    return max;
  }

  /** Whether log entry `c` is in the log of the primary of `term`. */
  inLog(c: { lsn: number; term: number }, term: number): boolean {
    if (c.term > term) return false;
    for (const s of this.starts) {
      if (s.term > c.term && s.term <= term && c.lsn > s.startLsn) return false;
    }
    return true;
  }

  /**
   * What `userId` may read once every change of term `term`'s log up to
   * `lsn` is applied; `allOf`: owner-only collections it reads in full.
   */
  viewAt(lsn: number, userId: string, allOf: readonly string[], term = this.term): DocsView {
    const key = `${lsn}|${term}|${userId}|${allOf.join(',')}`;
    if (this.memo?.key === key) return cloneView(this.memo.view);
    const view = emptyView(this.collections);
    for (const list of this.versions.values()) {
      let latest: Change | undefined;
      for (const c of list) {
        if (c.lsn > lsn || !this.inLog(c, term)) continue;
        if (latest === undefined || c.lsn > latest.lsn) latest = c;
      }
      if (!latest || latest.doc === null) continue;
      if (latest.owner !== null && latest.owner !== userId && !allOf.includes(latest.collection)) continue;
      const docs = view[latest.collection];
      if (docs) docs[latest.id] = latest.doc;
    }
    this.memo = { key, view };
    return cloneView(view);
  }
}

export function emptyView(collections: readonly string[]): DocsView {
  return Object.fromEntries(collections.map((c) => [c, {}]));
}

/** A copy whose maps can be changed; the documents are shared (callers replace them, never edit them). */
export function cloneView(view: DocsView): DocsView {
  const out: DocsView = {};
  for (const [c, docs] of Object.entries(view)) out[c] = { ...docs };
  return out;
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
