import 'fake-indexeddb/auto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../../client/lib/open';
import { storeSchema } from '../../shared/apps/store';
import { ackLosingTransport } from '../support/ack-recorder';
import { openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { removeDir, startServerProcess, tempDataDir } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readOutcomes, readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

interface Status {
  role: string;
  headLsn: number;
  replicas: Array<{ appliedLsn: number }>;
  minSyncReplicas: { met: boolean };
}

describe('rejections survive a failover', () => {
  const servers: ServerProcess[] = [];
  const clients: NodeClient[] = [];
  const primaryDir = tempDataDir('tideline-rej-primary-');
  const replicaDir = tempDataDir('tideline-rej-replica-');
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop();
    removeDir(primaryDir);
    removeDir(replicaDir);
  });

  it('the promoted replica reports every rejection the old primary made and the client never heard', async () => {
    const primary = await startServerProcess({ dataDir: primaryDir, args: ['--no-seed', '--min-sync-replicas', '1'] });
    servers.push(primary);
    const replica = await startServerProcess({ dataDir: replicaDir, args: ['--no-seed', '--primary', primary.url] });
    servers.push(replica);
    await waitFor('replica connected', async () => (await primary.admin<Status>('/status')).minSyncReplicas.met);

    // A note another user will delete, and the last unit of a product.
    const staff = await openClient([primary.url], 'rej-staff', { roles: ['staff'] });
    const other = await openClient([primary.url], 'rej-other');
    clients.push(staff, other);
    await staff.mutate.put({
      collection: 'products',
      doc: { id: 'rare', name: 'Rare', category: 'Toys', price: 5, stock: 1, rating: 5 },
    });
    await other.mutate.put({ collection: 'notes', doc: { id: 'doomed', text: 'soon gone', createdAt: 1 } });
    await waitFor('setup confirmed', () => staff.status().pending === 0 && other.status().pending === 0);

    const net = ackLosingTransport();
    const shopper = await open(storeSchema, {
      servers: [primary.url, replica.url],
      token: tokenFor('rej-shopper'),
      dbName: `rej-shopper-${process.pid}`,
      connect: net.factory,
      requestTimeoutMs: 2_000,
    });
    clients.push(shopper);
    await waitFor(
      'shopper has the product',
      async () =>
        (await shopper.collection('products').get('rare')) !== undefined &&
        (await shopper.collection('notes').get('doomed')) !== undefined,
    );
    shopper.engine.stop();
    // Offline: a checkout of the last unit (someone else gets it first), a patch of a note another user
    // deletes meanwhile (the shopper still has it, so only the primary can refuse it), then a write that commits.
    await shopper.mutate.checkout({
      orderId: 'rej-shopper/too-late',
      lines: [{ productId: 'rare', qty: 1 }],
      at: 1,
    });
    await shopper.mutate.patch({ collection: 'notes', id: 'doomed', set: { text: 'mine now' } });
    await other.mutate.delete({ collection: 'notes', id: 'doomed' });
    await shopper.mutate.put({ collection: 'notes', doc: { id: 'after-refusals', text: 'ok', createdAt: 1 } });
    await staff.mutate.patch({ collection: 'products', id: 'rare', set: { stock: 0 } });
    await waitFor(
      'stock is 0 and the note gone on the primary',
      () => staff.status().pending === 0 && other.status().pending === 0,
    );

    net.arm();
    await shopper.engine.start();
    await waitFor('the primary answered, unheard', () => net.cut());
    shopper.engine.stop();
    expect(shopper.status().pending).toBe(3);
    const primaryState = readServerState(primaryDir);
    const shopperId = shopper.engine.clientId!;
    expect(primaryState.lastSeq.get(shopperId)).toBe(3);
    expect(primaryState.docs['notes']?.['after-refusals']?.['text']).toBe('ok');
    const primaryOutcomes = readOutcomes(join(primaryDir, 'tideline.db'));
    expect(primaryOutcomes.rejections.filter((r) => r.client_id === shopperId).map((r) => [r.seq, r.code])).toEqual([
      [1, 'REJECTED'],
      [2, 'NOT_FOUND'],
    ]);
    // minSyncReplicas 1: the answer waited for the replica, so it has the outcomes as the primary has them.
    expect(readOutcomes(join(replicaDir, 'tideline.db'))).toEqual(primaryOutcomes);

    await primary.kill9();
    const promoted = await replica.admin<{ term: number }>('/promote', {});
    expect(promoted.term).toBe(2);
    for (const c of [staff, other]) c.close();

    const rejected: string[] = [];
    shopper.on((e) => {
      if (e.type === 'rejected') rejected.push(`${e.rejection.seq}:${e.rejection.name}:${e.rejection.error.code}`);
    });
    net.up();
    await shopper.engine.start();
    await waitFor(
      'shopper settled on the promoted replica',
      () => shopper.status().pending === 0 && shopper.status().server === replica.url,
      30_000,
    );
    expect(rejected).toEqual(['1:checkout:REJECTED', '2:patch:NOT_FOUND']);
    expect((await shopper.rejections()).map((r) => [r.seq, r.error.code])).toEqual([
      [1, 'REJECTED'],
      [2, 'NOT_FOUND'],
    ]);
    expect(await shopper.collection('orders').get('rej-shopper/too-late')).toBeUndefined();
    expect(await shopper.collection('notes').get('doomed')).toBeUndefined();
    expect((await shopper.collection('notes').get('after-refusals'))?.['text']).toBe('ok');
    // Nothing was committed twice on the new primary.
    expect(readServerState(replicaDir).commitsPerMutation.get(`${shopperId}#3`)).toBe(1);
  });
});
