import { useDeferredValue, useEffect, useId, useState } from 'react';
import type { Doc } from 'tideline/schema';
import { categories, isSortKey, queryCatalog, SORTS } from './catalog-query';
import type { CatalogFilter, SortKey } from './catalog-query';
import { errorMessage, formatCount, formatPrice } from './format';
import { parsePriceBound } from './input';
import { Notice } from './notice';
import type { NoticeState } from './notice';
import { ProductCard } from './product-card';
import { useCart } from './use-store';
import type { StoreDb } from './use-tideline';
import { useQuery } from 'tideline/react';

export const PAGE_SIZE = 24;

/** The catalog's controls as typed; kept by the app so they survive a visit to a product page. */
export interface CatalogForm {
  search: string;
  category: string;
  minPrice: string;
  maxPrice: string;
  sort: SortKey;
  page: number;
}

export const EMPTY_CATALOG_FORM: CatalogForm = {
  search: '',
  category: '',
  minPrice: '',
  maxPrice: '',
  sort: 'name',
  page: 0,
};

/** The filter a form asks for, and what is wrong with its price range, if anything. */
function filterOf(form: CatalogForm): { filter: Omit<CatalogFilter, 'search'>; problem: string | null } {
  const min = parsePriceBound(form.minPrice);
  const max = parsePriceBound(form.maxPrice);
  const minPrice = min.ok ? min.value : null;
  const maxPrice = max.ok ? max.value : null;
  const problem = !min.ok
    ? `Min price: ${min.message}`
    : !max.ok
      ? `Max price: ${max.message}`
      : minPrice !== null && maxPrice !== null && minPrice > maxPrice
        ? `The min price (${formatPrice(minPrice)}) is above the max price (${formatPrice(maxPrice)}).`
        : null;
  return {
    filter: {
      category: form.category,
      // A range that cannot match anything is shown as a problem, not applied.
      minPrice: problem ? null : minPrice,
      maxPrice: problem ? null : maxPrice,
      sort: form.sort,
    },
    problem,
  };
}

/**
 * The catalog: search, filters, sort and pages, every answer read from the
 * local replica through its indexes (catalog-query.ts), live: a staff edit or
 * another shopper's purchase shows up here as soon as it syncs.
 */
export function CatalogPage({
  db,
  form,
  onForm,
}: {
  db: StoreDb;
  form: CatalogForm;
  onForm: (f: CatalogForm) => void;
}) {
  const table = db.collection('products').table;
  const search = useDeferredValue(form.search.trim());
  const { filter, problem } = filterOf(form);
  const query: CatalogFilter = { ...filter, search };
  const queryKey = JSON.stringify(query);
  const result = useQuery(db, async () => {
    const started = performance.now();
    const page = await queryCatalog(table, query, form.page * PAGE_SIZE, PAGE_SIZE);
    return { ...page, ms: performance.now() - started };
    // `query` is a new object every render: its JSON form is the dependency.
  }, [table, queryKey, form.page]);
  const inReplica = useQuery(db, () => table.count(), [table]);
  const allCategories = useQuery(db, () => categories(table), [table], []);
  const cart = useCart(db);
  const [notice, setNotice] = useState<NoticeState | null>(null);
  const ids = { search: useId(), category: useId(), min: useId(), max: useId(), sort: useId() };

  const pages = Math.max(1, Math.ceil((result?.total ?? 0) / PAGE_SIZE));
  const update = (patch: Partial<CatalogForm>): void => onForm({ ...form, page: 0, ...patch });
  // Live changes can shrink the result under the current page: go to the last one.
  useEffect(() => {
    if (result && form.page > 0 && form.page >= pages) onForm({ ...form, page: pages - 1 });
  }, [result, form, pages, onForm]);

  const inCart = new Map((cart ?? []).map((l) => [l.productId, l.qty]));
  const addToCart = (product: Doc): void => {
    const name = typeof product['name'] === 'string' ? product['name'] : product.id;
    const stock = typeof product['stock'] === 'number' ? product['stock'] : 0;
    const have = inCart.get(product.id) ?? 0;
    if (have + 1 > stock) {
      setNotice({ kind: 'error', text: `${name}: only ${stock} in stock, and your cart has ${have}.` });
      return;
    }
    db.mutate.cartAdd({ productId: product.id, qty: 1 }).then(
      () => setNotice({ kind: 'ok', text: `Added ${name} to your cart.` }),
      (err: unknown) => setNotice({ kind: 'error', text: `${name} was not added: ${errorMessage(err)}` }),
    );
  };

  const first = (result?.total ?? 0) === 0 ? 0 : form.page * PAGE_SIZE + 1;
  const last = Math.min((form.page + 1) * PAGE_SIZE, result?.total ?? 0);

  return (
    <div className="shop">
      <section className="card filters" aria-labelledby="filters-title">
        <h2 id="filters-title">Find products</h2>
        <form role="search" onSubmit={(e) => e.preventDefault()}>
          <label htmlFor={ids.search}>Search products</label>
          <input
            id={ids.search}
            type="search"
            placeholder="e.g. smart kettle"
            value={form.search}
            onChange={(e) => update({ search: e.target.value })}
          />
          <label htmlFor={ids.category}>Category</label>
          <select id={ids.category} value={form.category} onChange={(e) => update({ category: e.target.value })}>
            <option value="">All categories</option>
            {allCategories.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
          <fieldset className="price-range">
            <legend>Price</legend>
            <label htmlFor={ids.min} className="visually-hidden">
              Min price
            </label>
            <input
              id={ids.min}
              type="text"
              inputMode="decimal"
              placeholder="Min $"
              value={form.minPrice}
              onChange={(e) => update({ minPrice: e.target.value })}
            />
            <span aria-hidden="true">to</span>
            <label htmlFor={ids.max} className="visually-hidden">
              Max price
            </label>
            <input
              id={ids.max}
              type="text"
              inputMode="decimal"
              placeholder="Max $"
              value={form.maxPrice}
              onChange={(e) => update({ maxPrice: e.target.value })}
            />
          </fieldset>
          {problem && (
            <p role="alert" className="error">
              {problem}
            </p>
          )}
          <label htmlFor={ids.sort}>Sort by</label>
          <select
            id={ids.sort}
            value={form.sort}
            onChange={(e) => isSortKey(e.target.value) && update({ sort: e.target.value })}
          >
            {Object.entries(SORTS).map(([key, s]) => (
              <option key={key} value={key}>
                {s.label}
              </option>
            ))}
          </select>
          <button
            type="button"
            className="quiet"
            onClick={() => onForm({ ...EMPTY_CATALOG_FORM, sort: form.sort })}
            disabled={!form.search && !form.category && !form.minPrice && !form.maxPrice}
          >
            Clear filters
          </button>
        </form>
      </section>

      <section className="results" aria-labelledby="catalog-title">
        <div className="results-head">
          <h1 id="catalog-title">Catalog</h1>
          <p className="hint" aria-live="polite">
            {inReplica === undefined || result === undefined
              ? 'Reading the local replica…'
              : inReplica === 0
                ? 'The catalog arrives with the first sync…'
                : `${formatCount(result.total)} of ${formatCount(inReplica)} products · from this browser's replica in ${Math.max(1, Math.round(result.ms))} ms`}
          </p>
        </div>
        <Notice notice={notice} onDismiss={() => setNotice(null)} />
        {result === undefined ? null : result.items.length === 0 ? (
          <p className="empty">
            {inReplica === 0 ? '' : 'No product matches. Try fewer words or a wider price range.'}
          </p>
        ) : (
          <ul className="products" aria-label="Products">
            {result.items.map((p) => (
              <ProductCard key={p.id} product={p} inCart={inCart.get(p.id) ?? 0} onAdd={() => addToCart(p)} />
            ))}
          </ul>
        )}
        {result !== undefined && result.total > 0 && (
          <nav className="pager" aria-label="Pages">
            <button
              type="button"
              className="secondary"
              disabled={form.page === 0}
              onClick={() => onForm({ ...form, page: form.page - 1 })}
            >
              Previous
            </button>
            <span aria-live="polite">
              {formatCount(first)}–{formatCount(last)} of {formatCount(result.total)} · page {form.page + 1} of{' '}
              {formatCount(pages)}
            </span>
            <button
              type="button"
              className="secondary"
              disabled={form.page + 1 >= pages}
              onClick={() => onForm({ ...form, page: form.page + 1 })}
            >
              Next
            </button>
          </nav>
        )}
      </section>
    </div>
  );
}
