import { useId, useState } from 'react';
import type { FormEvent } from 'react';
import { errorMessage, formatCount, formatPrice } from './format';
import { parseQuantity } from './input';
import { Notice } from './notice';
import type { NoticeState } from './notice';
import { Rating, stockText } from './product-card';
import { ProductEditor } from './product-editor';
import { href } from './router';
import { numberOf, textOf, useCart } from './use-store';
import type { StoreDb } from './use-tideline';
import { useQuery } from 'tideline/react';

/** One product, live from the replica; shoppers add it to the cart, staff edit it. */
export function ProductPage({ db, id, staff }: { db: StoreDb; id: string; staff: boolean }) {
  // null: not in the replica (undefined is still loading).
  const product = useQuery(db, async () => (await db.collection('products').get(id)) ?? null, [db, id]);
  const cart = useCart(db);
  const [qty, setQty] = useState('1');
  const [notice, setNotice] = useState<NoticeState | null>(null);
  const qtyId = useId();

  if (product === undefined) return <p className="empty">Loading…</p>;
  if (product === null) {
    return (
      <section className="card">
        <h1>No such product</h1>
        <p>There is no product “{id}” in this browser's replica.</p>
        <a href={href.catalog}>Back to the catalog</a>
      </section>
    );
  }

  const name = textOf(product, 'name', product.id);
  const stock = numberOf(product, 'stock');
  const have = cart?.find((l) => l.productId === product.id)?.qty ?? 0;

  const add = (e: FormEvent): void => {
    e.preventDefault();
    const parsed = parseQuantity(qty);
    if (!parsed.ok) {
      setNotice({ kind: 'error', text: `Nothing added. ${parsed.message}` });
      return;
    }
    if (stock !== null && have + parsed.value > stock) {
      setNotice({
        kind: 'error',
        text: `Nothing added: only ${formatCount(stock)} in stock${have > 0 ? `, and your cart has ${formatCount(have)}` : ''}.`,
      });
      return;
    }
    db.mutate.cartAdd({ productId: product.id, qty: parsed.value }).then(
      () => setNotice({ kind: 'ok', text: `Added ${formatCount(parsed.value)} × ${name} to your cart.` }),
      (err: unknown) => setNotice({ kind: 'error', text: `Nothing added: ${errorMessage(err)}` }),
    );
  };

  return (
    <div className="product-page">
      <a className="back" href={href.catalog}>
        ← Catalog
      </a>
      <section className="card product-detail" aria-labelledby="product-title">
        <p className="category">{textOf(product, 'category')}</p>
        <h1 id="product-title">{name}</h1>
        <Rating value={numberOf(product, 'rating')} />
        <p className="price big" data-testid="price">
          {formatPrice(product['price'])}
        </p>
        <p
          className="stock"
          data-low={stock !== null && stock > 0 && stock <= 5 ? 'true' : undefined}
          data-out={stock !== null && stock <= 0 ? 'true' : undefined}
        >
          {stockText(stock)}
          {have > 0 && <> · {formatCount(have)} in your cart</>}
        </p>
        <form className="add-form" onSubmit={add} noValidate>
          <label htmlFor={qtyId}>Quantity</label>
          <input
            id={qtyId}
            type="text"
            inputMode="numeric"
            value={qty}
            onChange={(e) => setQty(e.target.value)}
            size={4}
          />
          <button type="submit" disabled={stock !== null && stock <= 0}>
            {stock !== null && stock <= 0 ? 'Sold out' : 'Add to cart'}
          </button>
        </form>
        <Notice notice={notice} onDismiss={() => setNotice(null)} />
        <p className="hint">
          Product id <code>{product.id}</code>. Prices and stock update live as staff and other shoppers change them.
        </p>
      </section>
      {staff && <ProductEditor db={db} product={product} />}
    </div>
  );
}
