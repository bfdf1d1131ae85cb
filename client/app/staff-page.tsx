import { useDeferredValue, useId, useState } from 'react';
import type { Doc } from 'tideline/schema';
import type { OutboxEntry } from 'tideline/client';
import { matchesSearch } from './catalog-query';
import { formatCount, formatPrice } from './format';
import { OrderList } from './orders-page';
import { orderViews } from './orders';
import { ProductEditor } from './product-editor';
import { href } from './router';
import { numberOf, textOf } from './use-store';
import type { StoreDb } from './use-tideline';
import { useQuery } from 'tideline/react';

const INVENTORY_PAGE = 12;
const ORDERS_SHOWN = 50;

type InventorySort = 'stock' | 'name';

/**
 * The staff view: the inventory (low stock first, or by name), an editor for
 * the selected product, and every shopper's orders (staff read the whole
 * owner-only `orders` collection through its readRoles).
 */
export function StaffPage({ db }: { db: StoreDb }) {
  const table = db.collection('products').table;
  const [search, setSearch] = useState('');
  const [sort, setSort] = useState<InventorySort>('stock');
  const [page, setPage] = useState(0);
  const [selected, setSelected] = useState<string | null>(null);
  const wanted = useDeferredValue(search.trim());
  const ids = { search: useId(), sort: useId() };

  const inventory = useQuery(db, async () => {
    const ordered = table.orderBy(sort);
    if (!wanted) {
      const [items, total] = await Promise.all([
        ordered
          .clone()
          .offset(page * INVENTORY_PAGE)
          .limit(INVENTORY_PAGE)
          .toArray(),
        table.count(),
      ]);
      return { items, total };
    }
    const all = await ordered.filter((d) => matchesSearch(textOf(d, 'name'), wanted)).toArray();
    return { items: all.slice(page * INVENTORY_PAGE, (page + 1) * INVENTORY_PAGE), total: all.length };
  }, [table, sort, wanted, page]);
  const product = useQuery(db, async () => (selected ? ((await table.get(selected)) ?? null) : null), [
    table,
    selected,
  ]);
  const orders = useQuery(db, async () => {
    const [docs, count, outbox] = await Promise.all([
      db.collection('orders').table.orderBy('createdAt').reverse().limit(ORDERS_SHOWN).toArray(),
      db.collection('orders').table.count(),
      db.db.table<OutboxEntry, number>('_outbox').toArray(),
    ]);
    return { views: orderViews(docs, outbox, [], new Map(), db.userId), count };
  }, [db]);

  const pages = Math.max(1, Math.ceil((inventory?.total ?? 0) / INVENTORY_PAGE));

  return (
    <div className="staff">
      <div className="staff-top">
        <section className="card" aria-labelledby="inventory-title">
          <div className="card-head">
            <h1 id="inventory-title">Inventory</h1>
            <p className="hint">Edits and restocks go to every shopper's catalog as soon as they sync.</p>
          </div>
          <div className="inventory-controls">
            <label htmlFor={ids.search}>Search inventory</label>
            <input
              id={ids.search}
              type="search"
              value={search}
              placeholder="Product name"
              onChange={(e) => {
                setSearch(e.target.value);
                setPage(0);
              }}
            />
            <label htmlFor={ids.sort}>Order</label>
            <select
              id={ids.sort}
              value={sort}
              onChange={(e) => {
                setSort(e.target.value === 'name' ? 'name' : 'stock');
                setPage(0);
              }}
            >
              <option value="stock">Low stock first</option>
              <option value="name">By name</option>
            </select>
          </div>
          <div className="table-wrap">
            <table aria-label="Inventory">
              <thead>
                <tr>
                  <th scope="col">Product</th>
                  <th scope="col">Category</th>
                  <th scope="col" className="num">
                    Price
                  </th>
                  <th scope="col" className="num">
                    Stock
                  </th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {(inventory?.items ?? []).map((p) => (
                  <InventoryRow key={p.id} product={p} selected={p.id === selected} onEdit={() => setSelected(p.id)} />
                ))}
              </tbody>
            </table>
          </div>
          {inventory && inventory.total === 0 && <p className="empty">No product matches “{wanted}”.</p>}
          <nav className="pager" aria-label="Inventory pages">
            <button type="button" className="secondary" disabled={page === 0} onClick={() => setPage(page - 1)}>
              Previous
            </button>
            <span>
              page {page + 1} of {formatCount(pages)}
            </span>
            <button type="button" className="secondary" disabled={page + 1 >= pages} onClick={() => setPage(page + 1)}>
              Next
            </button>
          </nav>
        </section>
        {product ? (
          <ProductEditor key={product.id} db={db} product={product} />
        ) : (
          <section className="card editor placeholder">
            <h2>Edit a product</h2>
            <p className="hint">Choose “Edit” on a row to change its name, price or stock, or to restock it.</p>
          </section>
        )}
      </div>
      <section className="card" aria-labelledby="all-orders-title">
        <div className="card-head">
          <h2 id="all-orders-title">All orders</h2>
          <p className="hint">
            {orders === undefined
              ? 'Loading…'
              : orders.count === 0
                ? 'No orders yet. Orders from every shopper appear here as they sync.'
                : `${formatCount(orders.count)} ${orders.count === 1 ? 'order' : 'orders'} from every shopper${orders.count > ORDERS_SHOWN ? `; the latest ${ORDERS_SHOWN} shown` : ''}.`}
          </p>
        </div>
        {orders && orders.views.length > 0 && <OrderList label="All orders" orders={orders.views} showOwner />}
      </section>
    </div>
  );
}

function InventoryRow({ product, selected, onEdit }: { product: Doc; selected: boolean; onEdit: () => void }) {
  const name = textOf(product, 'name', product.id);
  const stock = numberOf(product, 'stock');
  return (
    <tr data-selected={selected ? 'true' : undefined} data-low={stock !== null && stock <= 5 ? 'true' : undefined}>
      <th scope="row">
        <a href={href.product(product.id)}>{name}</a>
      </th>
      <td>{textOf(product, 'category')}</td>
      <td className="num">{formatPrice(product['price'])}</td>
      <td className="num">{stock === null ? '–' : formatCount(stock)}</td>
      <td>
        <button type="button" className="quiet" onClick={onEdit} aria-label={`Edit ${name}`}>
          Edit
        </button>
      </td>
    </tr>
  );
}
