/**
 * Error codes that cross the wire. Every failure a client or operator can see
 * carries one of these, a human message, and whether retrying can help.
 */
export const ERROR_CODES = [
  'BAD_REQUEST', // the message does not match its schema, or breaks the protocol
  'UNAUTHORIZED', // no token, a bad token, or no hello yet
  'FORBIDDEN', // the user may not read or write this document
  'TOO_LARGE', // a message, a push or a document is over its limit
  'NOT_PRIMARY', // this node does not accept writes; `primary` says where to go
  'RATE_LIMITED', // slow down
  'REJECTED', // a collection rule (for example `stock >= 0`) failed
  'NOT_FOUND', // the mutator needed a document that does not exist
  'UNKNOWN_MUTATOR', // no mutator by that name
  'INVALID_ARGS', // the mutator's arguments do not match its schema
  'INVALID_DOCUMENT', // the resulting document does not match its collection schema
  'PROTOCOL_MISMATCH', // the client speaks another protocol version
  'QUOTA_EXCEEDED', // the writer holds as many documents or bytes of a collection as its quota allows
  'LINEAGE_MISMATCH', // a replica's data is not of its primary's cluster, or its history diverged from it
  'NOT_READY', // this node cannot answer yet (a replica its primary refused); retryable, perhaps on another node
  'INTERNAL', // a bug or an I/O failure on the server; retryable
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface WireErrorShape {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  /** With RATE_LIMITED: wait at least this long before sending the same again. */
  retryAfterMs?: number | undefined;
}

/** Marks every TidelineError, whichever copy of this module made it. */
const BRAND = Symbol.for('tideline.TidelineError');

/**
 * An error with a code, a hint for the operator, and an optional cause.
 *
 * `instanceof TidelineError` holds for errors made by any copy of this module
 * (an app's schema module may load its own copy of the kit): a mutator's
 * `NOT_FOUND` must reach the client as `NOT_FOUND`, not as an unknown error.
 */
export class TidelineError extends Error {
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  readonly [BRAND] = true;
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { retryable?: boolean; hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TidelineError';
    this.code = code;
    this.retryable = options.retryable ?? (code === 'INTERNAL' || code === 'RATE_LIMITED' || code === 'NOT_READY');
    this.hint = options.hint;
  }

  toWire(): WireErrorShape {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

/** Turns anything thrown into the wire shape, hiding internals of unexpected errors. */
export function toWireError(err: unknown): WireErrorShape {
  if (err instanceof TidelineError) return err.toWire();
  return { code: 'INTERNAL', message: 'internal error', retryable: true };
}
