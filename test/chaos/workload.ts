import type { Doc } from '../../shared/json';
import { ownedId } from '../../shared/schema/owned-id';
import type { Rng } from '../sim/random';
import { COUNTERS } from './chaos-client';
import type { ChaosClient, CounterBook } from './chaos-client';
import type { Violations } from './violations';

export const PRODUCTS = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5'] as const;
export const INITIAL_STOCK = 15;
const NOTES_PER_CLIENT = 12;
const SHARED_ITEMS = 6;

type Op = 'putNote' | 'patchNote' | 'patchOther' | 'inc' | 'checkout' | 'sharedItem' | 'forbidden' | 'restock';

/**
 * One client's seeded stream of storefront work. Each operation also checks
 * guarantee 6 where it can tell: right after `mutate` returns, the local
 * write is visible.
 */
export class Workload {
  private n = 0;

  constructor(
    private readonly client: ChaosClient,
    private readonly rng: Rng,
    private readonly book: CounterBook,
    private readonly violations: Violations,
    private readonly clientNames: readonly string[],
  ) {}

  /** Runs operations until `stop()` says so; pauses between them as a user would. */
  async run(stop: () => boolean): Promise<void> {
    while (!stop()) {
      await this.client.serial(() => this.step());
      await new Promise((r) => setTimeout(r, this.rng.int(0, 12)));
    }
  }

  private async step(): Promise<void> {
    const c = this.client;
    const db = c.db;
    if (!db) return;
    const staff = c.roles.includes('staff');
    const op = this.rng.weighted<Op>({
      putNote: 24,
      patchNote: 10,
      patchOther: 4,
      inc: 34,
      checkout: 16,
      sharedItem: 4,
      forbidden: staff ? 0 : 1,
      restock: staff ? 10 : 0,
    });
    const n = ++this.n;
    switch (op) {
      case 'putNote': {
        const doc: Doc = { id: `note-${c.name}-${this.rng.int(0, NOTES_PER_CLIENT - 1)}`, by: c.name, n, createdAt: n };
        await c.mutate('put', { collection: 'notes', doc });
        const seen = await db.collection('notes').get(doc.id);
        if (seen?.['n'] !== n) this.violations.add(6, `${c.name}: put ${doc.id} (n=${n}) not visible at once`);
        return;
      }
      case 'patchNote':
      case 'patchOther': {
        const owner = op === 'patchNote' ? c.name : this.rng.pick(this.clientNames);
        const id = `note-${owner}-${this.rng.int(0, NOTES_PER_CLIENT - 1)}`;
        const existed = (await db.collection('notes').get(id)) !== undefined;
        const text = `${c.name}:${n}`;
        // A patch of a note this client has not seen stays queued (NOT_FOUND locally); the primary decides.
        await c.mutate('patch', { collection: 'notes', id, set: { [`f${this.rng.int(0, 2)}`]: text } });
        if (existed) {
          const seen = await db.collection('notes').get(id);
          if (seen === undefined || !Object.values(seen).includes(text)) {
            this.violations.add(6, `${c.name}: patch of ${id} not visible at once`);
          }
        }
        return;
      }
      case 'inc': {
        const counter = this.rng.pick(COUNTERS);
        const by = this.rng.int(1, 5);
        const before = (await db.collection('notes').get(counter))?.['n'];
        this.book.add(counter, by);
        await c.mutate('inc', { collection: 'notes', id: counter, field: 'n', by });
        const after = (await db.collection('notes').get(counter))?.['n'];
        if (typeof before === 'number' && (typeof after !== 'number' || after < before + by)) {
          this.violations.add(6, `${c.name}: inc ${counter} by ${by} from ${before} shows ${JSON.stringify(after)}`);
        }
        return;
      }
      case 'checkout': {
        const lines = [this.rng.pick(PRODUCTS), this.rng.pick(PRODUCTS)]
          .filter((p, i, all) => all.indexOf(p) === i)
          .slice(0, this.rng.int(1, 2))
          .map((productId) => ({ productId, qty: this.rng.int(1, 3) }));
        await c.mutate('checkout', { orderId: ownedId(c.userId, `order-${c.name}-${n}`), lines, at: n });
        return;
      }
      case 'sharedItem': {
        // An id outside the user's namespace (one all users try to take): the library refuses it at once
        // (FORBIDDEN, nothing stored), so no user can take an id another needs.
        const id = `item-shared-${this.rng.int(0, SHARED_ITEMS - 1)}`;
        await c.mutate('put', { collection: 'items', doc: { id, by: c.name, n } });
        return;
      }
      case 'forbidden': {
        // Refused by the library itself (a shopper may not write products): nothing may be stored.
        const outbox = await db.db.table('_outbox').count();
        const seq = await c.mutate('put', {
          collection: 'products',
          doc: { id: this.rng.pick(PRODUCTS), name: 'hacked', category: 'x', price: 0, stock: 1_000, rating: 0 },
        });
        if (seq !== null) this.violations.add(9, `${c.name}: a shopper's product write was accepted (seq ${seq})`);
        if ((await db.db.table('_outbox').count()) > outbox) {
          this.violations.add(7, `${c.name}: a refused write left something in the outbox`);
        }
        return;
      }
      case 'restock': {
        await c.mutate('inc', {
          collection: 'products',
          id: this.rng.pick(PRODUCTS),
          field: 'stock',
          by: this.rng.int(1, 5),
        });
        return;
      }
    }
  }
}
