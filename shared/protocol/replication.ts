import { z } from 'zod';
import { docSchema } from '../json';
import { changeSchema, lsnSchema } from './change';
import { wireErrorSchema } from './wire-error';

/**
 * The /replication namespace: a replica follows the primary's change log.
 * The Socket.IO handshake carries `auth: { secret }` (the cluster secret).
 *
 *   replica → primary   follow (ack FollowAck)
 *   primary → replica   repl:changes, repl:snapshot (each acked with ReplAck)
 */

export const termStartSchema = z.object({ term: z.number().int().positive(), startLsn: lsnSchema });

export const followSchema = z.object({
  protocol: z.number().int(),
  replicaId: z.string().min(1).max(128),
  /** Where the replica serves HTTP, for status and redirects. */
  url: z.string().max(512).nullable(),
  /** The highest term the replica has seen. */
  term: z.number().int().nonnegative(),
  /** The last LSN it applied, and the term of the history that LSN belongs to. */
  checkpoint: lsnSchema,
  checkpointTerm: z.number().int().nonnegative(),
  /** The cluster its data belongs to; null for a store from before cluster ids that has not followed since. */
  clusterId: z.string().min(1).max(64).nullable(),
  /** Identity (a SHA-256, hex) of its log entry at `checkpoint`; null when it has none there (0, compacted). */
  checkpointEntry: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
});
export type Follow = z.infer<typeof followSchema>;

export const followAckSchema = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    primaryId: z.string(),
    /** The primary's cluster id, which the replica adopts. */
    clusterId: z.string().min(1).max(64),
    term: z.number().int().positive(),
    headLsn: lsnSchema,
    horizon: lsnSchema,
    terms: z.array(termStartSchema).min(1),
    /**
     * Set when the replica's log holds changes past the point where it forked
     * from the primary's: it moves (forkLsn, checkpoint] to a rollback file
     * and is sent a snapshot.
     */
    forkLsn: lsnSchema.optional(),
  }),
  z.object({ ok: z.literal(false), error: wireErrorSchema }),
]);
export type FollowAck = z.infer<typeof followAckSchema>;

/**
 * The outcome of a mutation that wrote no document (a rejection, or a no-op
 * when `error` is null), at its own LSN in the log.
 */
export const outcomeEntrySchema = z.object({
  lsn: lsnSchema,
  term: z.number().int().nonnegative(),
  clientId: z.string().min(1).max(64),
  seq: z.number().int().positive(),
  error: wireErrorSchema.nullable(),
  ts: z.number(),
});

/**
 * Primary → replica: every log entry `from < lsn <= to` (replicas have no
 * scope): document changes and outcomes, each list in LSN order; together
 * they cover the range without holes.
 */
export const replChangesSchema = z.object({
  from: lsnSchema,
  to: lsnSchema,
  changes: z.array(changeSchema),
  outcomes: z.array(outcomeEntrySchema),
  /**
   * The user each client id of these entries is bound to (client id → user),
   * for those that are bound: a promoted replica refuses another user's hello
   * with them, as its primary did.
   */
  users: z.record(z.string().min(1).max(64), z.string().min(1).max(256)),
});
export type ReplChanges = z.infer<typeof replChangesSchema>;

export const storedDocSchema = z.object({
  collection: z.string(),
  id: z.string(),
  owner: z.string().nullable(),
  lsn: lsnSchema,
  doc: docSchema.nullable(),
  /** Who the document counts against for quotas; left out by nodes that keep no authors. */
  author: z.string().nullable().optional(),
});

/** Primary → replica: the whole store as of `asOf`, in pages; applied with the last one. */
export const replSnapshotSchema = z.object({
  asOf: lsnSchema,
  page: z.number().int().nonnegative(),
  done: z.boolean(),
  terms: z.array(termStartSchema).min(1),
  docs: z.array(storedDocSchema),
  /** Every client's last seq, and the user it is bound to (left out when unbound). */
  clients: z.array(
    z.object({
      clientId: z.string(),
      lastSeq: z.number().int().nonnegative(),
      userId: z.string().min(1).max(256).optional(),
    }),
  ),
  /** Recent rejections (the last page only), so a promoted replica reports them as its primary would. */
  rejections: z.array(z.object({ clientId: z.string(), seq: z.number().int().positive(), error: wireErrorSchema })),
});
export type ReplSnapshot = z.infer<typeof replSnapshotSchema>;

/** Replica → primary, as the ack of every repl message: what it has applied durably. */
export const replAckSchema = z.object({ appliedLsn: lsnSchema });
export type ReplAck = z.infer<typeof replAckSchema>;
