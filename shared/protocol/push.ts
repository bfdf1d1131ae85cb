import { z } from 'zod';
import { jsonValueSchema } from '../json';
import { lsnSchema } from './change';
import { wireErrorSchema } from './wire-error';

export const seqSchema = z.number().int().positive();

/** One unit of client intent. The client id is the session's, from hello. */
export const mutationSchema = z.object({
  seq: seqSchema,
  name: z.string().min(1).max(64),
  args: jsonValueSchema,
});
export type Mutation = z.infer<typeof mutationSchema>;

/** Client → server. One push in flight per client; seqs rise by one. */
export const pushSchema = z.object({
  mutations: z.array(mutationSchema).min(1),
});
export type Push = z.infer<typeof pushSchema>;

export const mutationResultSchema = z.discriminatedUnion('status', [
  z.object({ seq: seqSchema, status: z.literal('applied'), lsn: lsnSchema }),
  /** Seen before: `error` is set when that first attempt was rejected. */
  z.object({ seq: seqSchema, status: z.literal('duplicate'), error: wireErrorSchema.optional() }),
  z.object({ seq: seqSchema, status: z.literal('rejected'), error: wireErrorSchema }),
]);
export type MutationResult = z.infer<typeof mutationResultSchema>;

export const pushAckSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), results: z.array(mutationResultSchema) }),
  z.object({ ok: z.literal(false), error: wireErrorSchema }),
]);
export type PushAck = z.infer<typeof pushAckSchema>;
