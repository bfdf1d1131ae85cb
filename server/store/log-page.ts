import type { Doc } from '../../shared/json';
import type { Change } from '../../shared/protocol/change';
import { logEntryBytes } from './store';
import type { LogPage, OutcomeEntry } from './store';

/**
 * How a log page is cut, shared by the SQLite and PostgreSQL stores (each
 * only reads the rows): the lowest LSNs of changes and outcomes within the
 * count and byte budget, then never ending inside a mutation (its changes
 * have consecutive LSNs and one origin).
 */

/** A stored document body (JSON text the store wrote). */
export function parseDoc(body: string): Doc {
  return JSON.parse(body) as Doc;
}

/** A stored change as both stores select it. */
export interface ChangeRow {
  lsn: number;
  term: number;
  collection: string;
  id: string;
  owner: string | null;
  body: string | null;
  client_id: string | null;
  seq: number | null;
  ts: number;
}

/** A change row's `logEntryBytes`, measured on its stored text as the memory store measures it. */
export function changeRowBytes(r: ChangeRow): number {
  return logEntryBytes({ collection: r.collection, id: r.id, body: r.body, clientId: r.client_id });
}

export function changeOf(r: ChangeRow): Change {
  return {
    lsn: r.lsn,
    term: r.term,
    collection: r.collection,
    id: r.id,
    doc: r.body === null ? null : parseDoc(r.body),
    owner: r.owner,
    clientId: r.client_id,
    seq: r.seq,
    ts: r.ts,
  };
}

const sameOrigin = (a: Change, b: Change): boolean => a.clientId === b.clientId && a.seq === b.seq;

/**
 * The first cut: up to `n` entries after `after` in LSN order, within
 * `maxBytes` (the first always goes). Outcomes at or past `cutAt` (where the
 * changes stopped for the budget) are left out. Returns the bytes taken.
 */
export function cutPage(
  changeRows: readonly ChangeRow[],
  outcomes: readonly OutcomeEntry[],
  cutAt: number,
  after: number,
  n: number,
  maxBytes: number,
): { page: LogPage; bytes: number } {
  const entries = [
    ...changeRows.map((r) => ({ lsn: r.lsn, bytes: changeRowBytes(r) })),
    ...outcomes.filter((o) => o.lsn < cutAt).map((o) => ({ lsn: o.lsn, bytes: logEntryBytes(o) })),
  ].sort((a, b) => a.lsn - b.lsn);
  let to = after;
  let bytes = 0;
  for (let i = 0; i < entries.length && i < n; i++) {
    const e = entries[i]!;
    if (i > 0 && bytes + e.bytes > maxBytes) break;
    bytes += e.bytes;
    to = e.lsn;
  }
  const page: LogPage = {
    changes: changeRows.filter((r) => r.lsn <= to).map(changeOf),
    outcomes: outcomes.filter((o) => o.lsn <= to),
    to,
  };
  return { page, bytes };
}

/** The change the page ends in when it may end inside a mutation (a client's, at the page's last LSN). */
export function openMutation(page: LogPage): Change | undefined {
  const last = page.changes[page.changes.length - 1];
  return last !== undefined && last.lsn === page.to && last.clientId !== null ? last : undefined;
}

/**
 * How many of `next` (rows after `end`, in LSN order) continue the mutation
 * of `last`: consecutive LSNs, the same origin.
 */
export function continuing(
  next: ReadonlyArray<{ lsn: number; client_id: string | null; seq: number | null }>,
  end: number,
  last: Change,
): number {
  let i = 0;
  while (
    i < next.length &&
    next[i]!.lsn === end + i + 1 &&
    next[i]!.client_id === last.clientId &&
    next[i]!.seq === last.seq
  )
    i++;
  return i;
}

/**
 * Finishes a page that ended inside a mutation, given the mutation's `rest`
 * (its rows after the page, up to LSN `end`): the page takes them when they
 * fit the budget or when the mutation began the page; otherwise the
 * mutation goes to the next page, whole.
 */
export function finishMutation(
  page: LogPage,
  last: Change,
  rest: readonly ChangeRow[],
  end: number,
  after: number,
  bytes: number,
  maxBytes: number,
): void {
  const restBytes = rest.reduce((sum, r) => sum + changeRowBytes(r), 0);
  if (bytes + restBytes <= maxBytes) {
    page.changes.push(...rest.map(changeOf));
    page.to = end;
    return;
  }
  let begin = page.changes.length - 1;
  while (
    begin > 0 &&
    sameOrigin(page.changes[begin - 1]!, last) &&
    page.changes[begin - 1]!.lsn === page.changes[begin]!.lsn - 1
  )
    begin--;
  const firstLsn = page.changes[begin]!.lsn;
  if (firstLsn === after + 1) {
    page.changes.push(...rest.map(changeOf));
    page.to = end;
  } else {
    page.changes.length = begin;
    page.to = firstLsn - 1;
    page.outcomes = page.outcomes.filter((o) => o.lsn < firstLsn);
  }
}
