/** Default limits; a server may be configured with others. */
export interface Limits {
  /** Largest Socket.IO message the server accepts, in bytes. */
  maxMessageBytes: number;
  /** Most mutations in one push. */
  maxMutationsPerPush: number;
  /** Largest document, as UTF-8 JSON, in bytes. */
  maxDocBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxMessageBytes: 1_000_000,
  maxMutationsPerPush: 500,
  maxDocBytes: 64 * 1024,
};
