import { useId } from 'react';
import type { Doc } from 'tideline/schema';
import { formatCount, formatPrice } from './format';
import { href } from './router';
import { numberOf, textOf } from './use-store';

/** How much is left, in words: "12 in stock", "Only 3 left", "Out of stock". */
export function stockText(stock: number | null): string {
  if (stock === null) return 'Stock unknown';
  if (stock <= 0) return 'Out of stock';
  if (stock <= 5) return `Only ${formatCount(stock)} left`;
  return `${formatCount(stock)} in stock`;
}

export function Rating({ value }: { value: number | null }) {
  if (value === null) return null;
  return (
    <span className="rating" role="img" aria-label={`Rated ${value.toFixed(1)} out of 5`}>
      <span aria-hidden="true">★ {value.toFixed(1)}</span>
    </span>
  );
}

/** One product of the catalog grid. */
export function ProductCard({ product, inCart, onAdd }: { product: Doc; inCart: number; onAdd: () => void }) {
  const titleId = useId();
  const name = textOf(product, 'name', product.id);
  const stock = numberOf(product, 'stock');
  const soldOut = stock !== null && stock <= 0;
  return (
    <li className="product" aria-labelledby={titleId}>
      <div className="product-top">
        <span className="category">{textOf(product, 'category')}</span>
        <Rating value={numberOf(product, 'rating')} />
      </div>
      <h3 id={titleId}>
        <a href={href.product(product.id)}>{name}</a>
      </h3>
      <div className="product-bottom">
        <span className="price" data-testid="price">
          {formatPrice(product['price'])}
        </span>
        <span
          className="stock"
          data-low={stock !== null && stock > 0 && stock <= 5 ? 'true' : undefined}
          data-out={stock !== null && stock <= 0 ? 'true' : undefined}
        >
          {stockText(stock)}
        </span>
      </div>
      <div className="product-actions">
        <button type="button" onClick={onAdd} disabled={soldOut} aria-describedby={titleId}>
          {soldOut ? 'Sold out' : 'Add to cart'}
        </button>
        {inCart > 0 && <span className="in-cart">{formatCount(inCart)} in cart</span>}
      </div>
    </li>
  );
}
