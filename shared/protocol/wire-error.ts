import { z } from 'zod';
import { ERROR_CODES } from '../errors';

export const wireErrorSchema = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  retryable: z.boolean(),
  /** With NOT_PRIMARY: where the primary is, when this node knows. */
  primary: z.string().optional(),
  /** With RATE_LIMITED: wait at least this long before sending the same again (servers before issue 9 omit it). */
  retryAfterMs: z.number().int().nonnegative().optional(),
});
export type WireError = z.infer<typeof wireErrorSchema>;
