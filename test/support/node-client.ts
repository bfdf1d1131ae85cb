import 'fake-indexeddb/auto';
import { storeSchema } from '../../shared/apps/store';
import type { StoreSchema } from '../../shared/apps/store';
import type { Doc } from '../../shared/json';
import { open } from '../../client/lib/open';
import type { Tideline } from '../../client/lib/open';
import { signToken } from '../../server/auth/tokens';
import { TEST_SECRET } from './server-process';

let counter = 0;

/** A token signed with the test servers' secret. */
export function tokenFor(userId: string, roles: string[] = []): string {
  return signToken(TEST_SECRET, { sub: userId, roles }, Date.now());
}

export type NodeClient = Tideline<StoreSchema>;

/** A real client library instance on fake-indexeddb, with its own database. */
export async function openClient(
  servers: string[],
  userId: string,
  options: { roles?: string[]; dbName?: string; requestTimeoutMs?: number } = {},
): Promise<NodeClient> {
  return open(storeSchema, {
    servers,
    token: tokenFor(userId, options.roles ?? []),
    dbName: options.dbName ?? `test-${process.pid}-${++counter}-${userId}`,
    requestTimeoutMs: options.requestTimeoutMs ?? 5_000,
  });
}

/** Every document of a collection in the client's replica, by id. */
export async function localDocs(client: NodeClient, collection: string): Promise<Record<string, Doc>> {
  const docs = await client.db.table<Doc, string>(collection).toArray();
  return Object.fromEntries(docs.map((d) => [d.id, d]));
}
