import type { WireErrorShape } from '../../shared/errors';
import { jsonByteLength } from '../../shared/json';
import type { Write } from '../../shared/mutators/types';
import type { AppSchema } from '../../shared/schema/define-schema';
import type { AsyncStoreTx } from '../store/async-store';
import type { Usage } from '../store/store';

/**
 * The QUOTA_EXCEEDED error for a mutation's `writes` by `writer`, or null
 * when they keep the writer within every quota of the collections they
 * touch (`CollectionDef.quota`). Reads `tx` as it stands before the writes
 * are appended, inside the same transaction, so mutations earlier in a group
 * commit count.
 *
 * Only the writer's own usage is checked, and only where it grows: a new
 * document counts against its writer, a new version against the author of
 * the one it replaces (an edit by staff never charges the staff member, nor
 * is refused for the author's quota), and a user over a quota that was
 * lowered may still shrink and delete.
 */
export async function quotaError(
  schema: AppSchema,
  writes: readonly Write[],
  writer: string,
  tx: Pick<AsyncStoreTx, 'getDoc' | 'usage' | 'docAuthor'>,
): Promise<WireErrorShape | null> {
  const growth = new Map<string, Usage>();
  for (const w of writes) {
    const quota = quotaOf(schema, w.collection);
    if (quota === undefined) continue;
    const prev = (await tx.getDoc(w.collection, w.id))?.doc ?? null;
    const charged = prev !== null ? await tx.docAuthor(w.collection, w.id) : writer;
    if (charged !== writer) continue;
    const g = growth.get(w.collection) ?? { docs: 0, bytes: 0 };
    g.docs += (w.doc !== null ? 1 : 0) - (prev !== null ? 1 : 0);
    g.bytes += (w.doc !== null ? jsonByteLength(w.doc) : 0) - (prev !== null ? jsonByteLength(prev) : 0);
    growth.set(w.collection, g);
  }
  for (const [collection, g] of growth) {
    const quota = quotaOf(schema, collection)!;
    const have = await tx.usage(collection, writer);
    if (quota.docs !== undefined && g.docs > 0 && have.docs + g.docs > quota.docs) {
      return exceeded(`${collection}: ${quota.docs} documents per user (you have ${have.docs})`);
    }
    if (quota.bytes !== undefined && g.bytes > 0 && have.bytes + g.bytes > quota.bytes) {
      return exceeded(
        `${collection}: ${quota.bytes} bytes per user (you have ${have.bytes}; this mutation adds ${g.bytes})`,
      );
    }
  }
  return null;
}

function quotaOf(schema: AppSchema, collection: string) {
  return Object.hasOwn(schema.collections, collection) ? schema.collections[collection]?.quota : undefined;
}

/** Not retryable: the same mutation fails again until the user deletes something. */
const exceeded = (message: string): WireErrorShape => ({ code: 'QUOTA_EXCEEDED', message, retryable: false });
