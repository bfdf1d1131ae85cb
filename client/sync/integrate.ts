import { deepEqual } from '../../shared/json';
import type { Doc } from '../../shared/json';
import type { Change } from '../../shared/protocol/change';
import type { Rejected } from '../../shared/protocol/changes';
import { applyLocal } from './apply-local';
import type { LocalRunDeps } from './apply-local';
import { docKey } from './local-store';
import type { LocalTx, OutboxEntry, RejectionRecord } from './local-store';

export interface Integrated {
  /** Outbox entries the primary has answered for, now gone. */
  settled: OutboxEntry[];
  /** Those of them that were rejected. */
  rejections: RejectionRecord[];
  /**
   * Keys (`collection/id`) of the local documents this may have changed: the
   * confirmed changes, the documents restored from the shadow, and what the
   * re-run pending mutations wrote. A superset: some may be unchanged.
   */
  changed: string[];
}

/**
 * Applies confirmed changes and drops settled mutations, keeping the
 * invariant: visible = confirmed + pending mutations re-run in seq order,
 * and the shadow holds the confirmed version of every document a pending
 * mutation overwrote.
 *
 * Fast path, when nothing still pending read or wrote what changed or what
 * the settled mutations wrote: restore the settled mutations' documents from
 * the shadow, apply the changes on top, and drop those shadow entries. (A
 * settled mutation's own confirmed change either comes in this message or
 * came earlier, while it was pending, and then went through a rebase that
 * refreshed its shadow entry.) Otherwise rebase: restore every shadowed
 * document, apply the changes, and re-run what is still pending.
 */
export async function integrateConfirmed(
  tx: LocalTx,
  deps: LocalRunDeps,
  changes: readonly Change[],
  lastSeq: number | undefined,
  rejected: Rejected,
  now: number,
): Promise<Integrated> {
  const outbox = await tx.outbox();
  const settled = lastSeq === undefined ? [] : outbox.filter((e) => e.seq <= lastSeq);
  const pending = lastSeq === undefined ? outbox : outbox.filter((e) => e.seq > lastSeq);
  const rejections = rejectionsOf(settled, rejected, now);
  const confirmed = changes.map((c) => ({ collection: c.collection, id: c.id, doc: c.doc }));

  const pendingKeys = new Set<string>();
  for (const e of pending) for (const k of [...e.reads, ...e.writes]) pendingKeys.add(k);
  const settledKeys = [...new Set(settled.flatMap((e) => e.writes))];
  const needsRebase =
    changes.some((c) => pendingKeys.has(docKey(c.collection, c.id))) || settledKeys.some((k) => pendingKeys.has(k));

  const changed = new Set(changes.map((c) => docKey(c.collection, c.id)));
  if (!needsRebase) {
    // A settled key that this message changes ends at its confirmed version whatever the shadow holds:
    // only the others (a rejected write, one confirmed earlier or out of scope) are restored.
    const toRestore = settledKeys.filter((k) => !changed.has(k));
    const restored = toRestore.length === 0 ? [] : await tx.shadowEntries(toRestore);
    await tx.applyDocs(await withoutUnchanged(tx, new Set(settledKeys), [...restored, ...confirmed]));
    if (settledKeys.length > 0) await tx.deleteShadow(settledKeys);
    for (const r of restored) changed.add(r.key);
  } else {
    const shadow = await tx.shadow();
    await tx.applyDocs([...shadow, ...confirmed]);
    await tx.clearShadow();
    await rerun(tx, deps, pending);
    for (const r of shadow) changed.add(r.key);
    for (const e of pending) for (const k of e.writes) changed.add(k);
  }
  if (settled.length > 0) await tx.deleteOutbox(settled.map((e) => e.seq));
  for (const r of rejections) await tx.addRejection(r);
  return { settled, rejections, changed: [...changed] };
}

type DocWrite = { collection: string; id: string; doc: Doc | null };

/**
 * The writes of `writes` (in order; the last of a key wins) that would change
 * the stored document, for the keys in `own`: this client's settled writes
 * coming back confirmed, which are usually what it already shows. Rewriting
 * an unchanged document costs IndexedDB a read of the old record, the index
 * updates and the write; one bulk read to compare costs far less. Writes of
 * other keys (other clients' changes) pass through unread.
 */
async function withoutUnchanged(
  tx: LocalTx,
  own: ReadonlySet<string>,
  writes: readonly DocWrite[],
): Promise<DocWrite[]> {
  if (own.size === 0) return [...writes];
  const last = new Map<string, DocWrite>();
  for (const w of writes) {
    const key = docKey(w.collection, w.id);
    last.delete(key);
    last.set(key, w);
  }
  const mine = [...last.entries()].filter(([key]) => own.has(key)).map(([, w]) => w);
  const current = mine.length === 0 ? [] : await tx.getDocs(mine);
  const unchanged = new Set<DocWrite>();
  mine.forEach((w, i) => {
    if (deepEqual(current[i] ?? null, w.doc)) unchanged.add(w);
  });
  return [...last.values()].filter((w) => !unchanged.has(w));
}

/** Replaces all local documents with a complete snapshot, then re-runs what is still pending. */
export async function swapInSnapshot(
  tx: LocalTx,
  deps: LocalRunDeps,
  docs: ReadonlyArray<{ collection: string; doc: Doc }>,
  lastSeq: number,
  rejected: Rejected,
  now: number,
): Promise<Integrated> {
  const outbox = await tx.outbox();
  const settled = outbox.filter((e) => e.seq <= lastSeq);
  const pending = outbox.filter((e) => e.seq > lastSeq);
  const rejections = rejectionsOf(settled, rejected, now);
  await tx.clearDocs();
  await tx.clearShadow();
  await tx.applyDocs(docs.map(({ collection, doc }) => ({ collection, id: doc.id, doc })));
  await rerun(tx, deps, pending);
  await tx.deleteOutbox(settled.map((e) => e.seq));
  for (const r of rejections) await tx.addRejection(r);
  // Documents the snapshot left out were deleted; their ids are not known here (the engine says so).
  const changed = new Set(docs.map(({ collection, doc }) => docKey(collection, doc.id)));
  for (const e of pending) for (const k of e.writes) changed.add(k);
  return { settled, rejections, changed: [...changed] };
}

async function rerun(tx: LocalTx, deps: LocalRunDeps, pending: readonly OutboxEntry[]): Promise<void> {
  for (const entry of pending) {
    const before = `${entry.reads.join('\n')}|${entry.writes.join('\n')}`;
    // A pending mutation that now fails locally stays queued: the primary decides.
    await applyLocal(tx, deps, entry);
    if (`${entry.reads.join('\n')}|${entry.writes.join('\n')}` !== before) await tx.putOutbox(entry);
  }
}

function rejectionsOf(settled: readonly OutboxEntry[], rejected: Rejected, now: number): RejectionRecord[] {
  const bySeq = new Map(rejected.map((r) => [r.seq, r.error]));
  const out: RejectionRecord[] = [];
  for (const e of settled) {
    const error = bySeq.get(e.seq);
    if (error) out.push({ seq: e.seq, name: e.name, args: e.args, error, at: now });
  }
  return out;
}
