/**
 * The wire protocol version. Bump it with every change to a schema in this
 * folder and add a line below; `protocol.test.ts` pins a hash of the schemas.
 *
 * History:
 * 1 — hello, push, changes, snapshot, error on /sync.
 * 2 — hello.checkpointTerm; the /replication namespace (follow, repl:changes, repl:snapshot).
 */
export const PROTOCOL_VERSION = 2;
