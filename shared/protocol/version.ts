/**
 * The wire protocol version. Bump it with every change to a schema in this
 * folder and add a line below; `protocol.test.ts` pins a hash of the schemas.
 *
 * History:
 * 1 — hello, push, changes, snapshot, error on /sync.
 * 2 — hello.checkpointTerm; the /replication namespace (follow, repl:changes, repl:snapshot).
 * 3 — repl:changes.outcomes and repl:snapshot.rejections: mutation outcomes replicate; a page of `changes`
 *     carries lastSeq whenever it holds one of the client's outcomes.
 *   (Still 3: the wire error's optional `retryAfterMs`, with RATE_LIMITED. Old clients drop the field and
 *   old servers never send it, so it needs no new version, which would refuse every older client.)
 */
export const PROTOCOL_VERSION = 3;
