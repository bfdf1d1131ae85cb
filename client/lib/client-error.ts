import type { SyncStatus } from '../sync/engine';

/**
 * Codes of failures that happen in the client alone and never cross the wire
 * (the wire's codes are `ErrorCode` in shared/errors.ts).
 * - `TIMEOUT`: a wait (`whenSynced`, `confirmed`) ran out of time;
 * - `CLOSED`: the database was closed while something waited on it.
 */
export type ClientErrorCode = 'TIMEOUT' | 'CLOSED';

/** A client-side failure, with the sync status at the time so the caller can say why (offline, pending). */
export class TidelineClientError extends Error {
  readonly code: ClientErrorCode;
  readonly status: SyncStatus;

  constructor(code: ClientErrorCode, message: string, status: SyncStatus) {
    super(message);
    this.name = 'TidelineClientError';
    this.code = code;
    this.status = status;
  }
}
