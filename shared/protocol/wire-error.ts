import { z } from 'zod';
import { ERROR_CODES } from '../errors';

export const wireErrorSchema = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  retryable: z.boolean(),
  /** With NOT_PRIMARY: where the primary is, when this node knows. */
  primary: z.string().optional(),
});
export type WireError = z.infer<typeof wireErrorSchema>;
