import { z } from 'zod';
import { changeSchema, lsnSchema } from './change';
import { wireErrorSchema } from './wire-error';

/** This client's mutations at or below `lastSeq` that were rejected, with why. */
export const rejectedSchema = z.array(z.object({ seq: z.number().int().positive(), error: wireErrorSchema }));
export type Rejected = z.infer<typeof rejectedSchema>;

/**
 * Server → client: every change in the client's scope with `from < lsn <= to`,
 * in LSN order. After applying it the client's checkpoint is `to`.
 * `lastSeq`, when present, is the highest seq of this client whose outcome is
 * included up to `to`: the client drops those from its outbox in the same
 * transaction. Every message that covers one of the client's own outcomes
 * (its changes, or a rejection) carries it, so the client never re-runs a
 * mutation whose effects it is applying. A message never splits a mutation.
 * Catch-up pages ask for an ack (flow control); live ones do not.
 */
export const changesSchema = z.object({
  from: lsnSchema,
  to: lsnSchema,
  changes: z.array(changeSchema),
  lastSeq: z.number().int().nonnegative().optional(),
  rejected: rejectedSchema.optional(),
});
export type Changes = z.infer<typeof changesSchema>;

/**
 * Server → client: the client's checkpoint is below the horizon, so it gets
 * the current documents of its scope, in pages. The client stages the pages
 * and swaps them in atomically with the last one, then its checkpoint is `asOf`.
 */
export const snapshotSchema = z.object({
  asOf: lsnSchema,
  page: z.number().int().nonnegative(),
  docs: z.array(z.object({ collection: z.string(), doc: changeSchema.shape.doc.unwrap() })),
  done: z.boolean(),
  lastSeq: z.number().int().nonnegative(),
  rejected: rejectedSchema,
});
export type Snapshot = z.infer<typeof snapshotSchema>;

export const pageAckSchema = z.object({ ok: z.boolean() });
export type PageAck = z.infer<typeof pageAckSchema>;
