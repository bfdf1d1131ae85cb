import { TidelineError } from '../../shared/errors';
import type { WireErrorShape } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import { scopeDocBytes } from './store';
import type { ScopeDoc, SnapshotCursor } from './store';

/** A document of a snapshot held as its JSON text until its page is read. */
export interface HeldDoc {
  collection: string;
  body: string;
}

/**
 * A `SnapshotCursor` over documents copied out at open time, in
 * (collection, id) order. The memory store uses it (its bodies are immutable
 * strings, so the copy is one array of references), and so does a SQLite
 * store in `:memory:`, which cannot open a second connection to read from.
 */
export function heldSnapshotCursor(
  asOf: number,
  docs: readonly HeldDoc[],
  lastSeq: number,
  rejections: ReadonlyMap<number, WireErrorShape>,
): SnapshotCursor {
  let at = 0;
  let closed = false;
  return {
    asOf,
    lastSeq,
    rejection: (seq) => {
      const error = rejections.get(seq);
      return error === undefined ? undefined : { ...error };
    },
    next(maxDocs, maxBytes) {
      if (closed) throw new TidelineError('INTERNAL', 'a snapshot cursor was read after it was closed');
      const page: ScopeDoc[] = [];
      let bytes = 0;
      while (at < docs.length && page.length < Math.max(1, maxDocs)) {
        const d = docs[at]!;
        const size = scopeDocBytes(d.collection, d.body);
        if (page.length > 0 && bytes + size > maxBytes) break;
        page.push({ collection: d.collection, doc: JSON.parse(d.body) as Doc });
        bytes += size;
        at++;
      }
      return { docs: page, done: at >= docs.length };
    },
    close() {
      closed = true;
    },
  };
}
