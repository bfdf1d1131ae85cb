import { useLiveQuery } from 'dexie-react-hooks';
import { useDeferredValue, useState } from 'react';
import { formatCount, formatPrice } from './format';
import type { StoreDb } from './use-tideline';

const LIMIT = 20;

/**
 * The first products by name, read from the local replica through its `name`
 * index (a prefix search uses the same index), so it works offline too. The
 * full storefront comes later.
 */
export function CatalogPreview({ db }: { db: StoreDb }) {
  const [search, setSearch] = useState('');
  const prefix = useDeferredValue(search.trim());
  const products = useLiveQuery(() => {
    const table = db.collection('products').table;
    const query = prefix ? table.where('name').startsWithIgnoreCase(prefix) : table.orderBy('name');
    return query.limit(LIMIT).toArray();
  }, [db, prefix]);
  const total = useLiveQuery(() => db.collection('products').table.count(), [db]);

  return (
    <section className="card catalog" aria-labelledby="catalog-title">
      <div className="card-head">
        <h2 id="catalog-title">Catalog preview</h2>
        <p className="hint">
          {total === undefined
            ? 'Reading the local replica…'
            : `${formatCount(total)} products in this browser's replica; searching never waits on the network.`}
        </p>
      </div>
      <input
        type="search"
        className="search"
        aria-label="Search products"
        placeholder="Search by name, e.g. “smart”"
        value={search}
        onChange={(e) => setSearch(e.target.value)}
      />
      {products === undefined ? (
        <p className="empty">Loading…</p>
      ) : products.length === 0 ? (
        <p className="empty">
          {prefix ? `No product name starts with “${prefix}”.` : 'The catalog arrives with the first sync.'}
        </p>
      ) : (
        <div className="table-wrap">
          <table aria-label="Products">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Category</th>
                <th scope="col" className="num">
                  Price
                </th>
                <th scope="col" className="num">
                  Stock
                </th>
              </tr>
            </thead>
            <tbody>
              {products.map((p) => (
                <tr key={p.id}>
                  <td>{typeof p['name'] === 'string' ? p['name'] : p.id}</td>
                  <td>{typeof p['category'] === 'string' ? p['category'] : ''}</td>
                  <td className="num">{formatPrice(p['price'])}</td>
                  <td className="num">{typeof p['stock'] === 'number' ? formatCount(p['stock']) : '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
