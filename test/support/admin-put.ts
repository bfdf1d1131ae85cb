import { randomUUID } from 'node:crypto';
import { TEST_ADMIN_TOKEN } from './server-process';

/** Writes product `id` as the system through `POST /admin/mutate`; throws unless it was applied. */
export async function adminPutProduct(url: string, id: string): Promise<void> {
  const res = await fetch(`${url}/admin/mutate`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      'content-type': 'application/json',
      'idempotency-key': randomUUID(),
    },
    body: JSON.stringify({
      name: 'put',
      args: { collection: 'products', doc: { id, name: id, category: 'tools', price: 1, stock: 1, rating: 4 } },
    }),
  });
  if (res.status !== 200) throw new Error(`admin put of ${id}: HTTP ${res.status} ${await res.text()}`);
}
