import { z } from 'zod';
import { lsnSchema } from './change';
import { wireErrorSchema } from './wire-error';

export const clientIdSchema = z
  .string()
  .min(8)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/, 'a client id is 8-64 of [A-Za-z0-9_-]');

/** Client → server, first message on /sync. */
export const helloSchema = z.object({
  protocol: z.number().int(),
  clientId: clientIdSchema,
  token: z.string().max(4096),
  /** The highest LSN this client has applied. */
  checkpoint: lsnSchema,
  /**
   * The lowest seq still in the client's outbox (its next seq when empty).
   * The server reports the rejections from there on, so a client that lost
   * a push ack still learns why its mutation was refused.
   */
  pendingFrom: z.number().int().positive(),
  /**
   * The term of the primary whose log the checkpoint belongs to (0 before
   * the first sync). After a failover the new primary compares it with its
   * term history: a checkpoint past the point where the terms forked holds
   * changes the new primary never had, so that client gets a snapshot.
   */
  checkpointTerm: z.number().int().nonnegative(),
});
export type Hello = z.infer<typeof helloSchema>;

export const helloOkSchema = z.object({
  ok: z.literal(true),
  serverId: z.string(),
  term: z.number().int().nonnegative(),
  headLsn: lsnSchema,
  horizon: lsnSchema,
  /** The highest seq of this client the server has an outcome for. */
  lastSeq: z.number().int().nonnegative(),
  userId: z.string(),
});

export const helloAckSchema = z.discriminatedUnion('ok', [
  helloOkSchema,
  z.object({ ok: z.literal(false), error: wireErrorSchema }),
]);
export type HelloAck = z.infer<typeof helloAckSchema>;
