import type { OutboxEntry } from '../../client/sync/local-store';
import type { JsonValue } from '../../shared/json';
import { runMutation } from '../../shared/mutators/run-mutation';
import type { MutatorContext } from '../../shared/mutators/types';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import type { AppSchema } from '../../shared/schema/define-schema';
import type { DocsView } from './server-history';
import { cloneView } from './server-history';

/**
 * What a user must see (guarantee 6): the confirmed data with the pending
 * mutations re-run on it in seq order. Computed here from scratch with the
 * shared `runMutation`, not with the client's shadow or rebase code, so a
 * client that counts a mutation twice (or drops one) shows a difference.
 * A pending mutation that fails on this data has no effect, as in the client.
 */
export function expectedVisible(
  schema: AppSchema,
  ctx: MutatorContext,
  confirmed: DocsView,
  outbox: readonly OutboxEntry[],
): DocsView {
  const view = cloneView(confirmed);
  for (const entry of [...outbox].sort((a, b) => a.seq - b.seq)) {
    const outcome = runMutation(
      schema,
      entry.name,
      entry.args,
      ctx,
      (collection, id) => view[collection]?.[id],
      DEFAULT_LIMITS,
    );
    if (!outcome.ok) continue;
    for (const w of outcome.writes) {
      const docs = (view[w.collection] ??= {});
      if (w.doc === null) delete docs[w.id];
      else docs[w.id] = w.doc;
    }
  }
  return view;
}

/** A numeric field of a view's document, or null when the document or field is absent. */
export function numberAt(view: DocsView, c: { collection: string; id: string; field: string }): number | null {
  const value: JsonValue | undefined = view[c.collection]?.[c.id]?.[c.field];
  return typeof value === 'number' ? value : null;
}
