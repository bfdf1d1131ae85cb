/**
 * The wire protocol version. Bump it with every change to a schema in this
 * folder and add a line below; `protocol.test.ts` pins a hash of the schemas.
 *
 * History:
 * 1 — hello, push, changes, snapshot, error on /sync.
 * 2 — hello.checkpointTerm; the /replication namespace (follow, repl:changes, repl:snapshot).
 * 3 — repl:changes.outcomes and repl:snapshot.rejections: mutation outcomes replicate; a page of `changes`
 *     carries lastSeq whenever it holds one of the client's outcomes.
 * 4 — error code QUOTA_EXCEEDED; repl:snapshot documents carry their `author` (per-user quotas).
 */
export const PROTOCOL_VERSION = 4;
