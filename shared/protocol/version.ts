/**
 * The wire protocol version. Bump it with every change to a schema in this
 * folder and add a line below; `protocol.test.ts` pins a hash of the schemas.
 *
 * History:
 * 1 — hello, push, changes, snapshot, error on /sync.
 * 2 — hello.checkpointTerm; the /replication namespace (follow, repl:changes, repl:snapshot).
 * 3 — repl:changes.outcomes and repl:snapshot.rejections: mutation outcomes replicate; a page of `changes`
 *     carries lastSeq whenever it holds one of the client's outcomes.
 * 4 — error codes QUOTA_EXCEEDED, LINEAGE_MISMATCH and NOT_READY; repl:snapshot documents carry their `author`
 *     (per-user quotas); lineage and bindings: follow.clusterId and follow.checkpointEntry, followAck.clusterId,
 *     repl:changes.users and repl:snapshot clients' userId. A follow of another version is refused with
 *     PROTOCOL_MISMATCH before its fields are read. The wire error's optional `retryAfterMs`, with
 *     RATE_LIMITED (floods).
 */
export const PROTOCOL_VERSION = 4;
