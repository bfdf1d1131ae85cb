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
}

/**
 * Applies confirmed changes and drops settled mutations, keeping the
 * invariant: visible = confirmed + pending mutations re-run in seq order.
 *
 * When no pending mutation read or wrote what changed and none settled, the
 * changes go straight in. Otherwise this rebases: restore the confirmed
 * versions from the shadow, apply the changes, and re-run what is still
 * pending on top.
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

  const touched = new Set<string>();
  for (const e of outbox) for (const k of [...e.reads, ...e.writes]) touched.add(k);
  const needsRebase = settled.length > 0 || changes.some((c) => touched.has(docKey(c.collection, c.id)));

  if (!needsRebase) {
    for (const c of changes) await writeDoc(tx, c.collection, c.id, c.doc);
    return { settled, rejections };
  }
  for (const s of await tx.shadow()) await writeDoc(tx, s.collection, s.id, s.doc);
  for (const c of changes) await writeDoc(tx, c.collection, c.id, c.doc);
  await tx.clearShadow();
  await rerun(tx, deps, pending);
  await tx.deleteOutbox(settled.map((e) => e.seq));
  for (const r of rejections) await tx.addRejection(r);
  return { settled, rejections };
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
  for (const { collection, doc } of docs) await tx.putDoc(collection, doc);
  await rerun(tx, deps, pending);
  await tx.deleteOutbox(settled.map((e) => e.seq));
  for (const r of rejections) await tx.addRejection(r);
  return { settled, rejections };
}

async function rerun(tx: LocalTx, deps: LocalRunDeps, pending: readonly OutboxEntry[]): Promise<void> {
  for (const entry of pending) {
    const before = `${entry.reads.join('\n')}|${entry.writes.join('\n')}`;
    // A pending mutation that now fails locally stays queued: the primary decides.
    await applyLocal(tx, deps, entry);
    if (`${entry.reads.join('\n')}|${entry.writes.join('\n')}` !== before) await tx.putOutbox(entry);
  }
}

async function writeDoc(tx: LocalTx, collection: string, id: string, doc: Doc | null): Promise<void> {
  if (doc) await tx.putDoc(collection, doc);
  else await tx.deleteDoc(collection, id);
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
