import { useId, useState } from 'react';
import type { FormEvent } from 'react';
import { cartIdOf, orderIdOf } from '../../shared/apps/store';
import type { Flash } from './app';
import { errorMessage, formatCount, formatPrice } from './format';
import { parseQuantity } from './input';
import { Notice } from './notice';
import type { NoticeState } from './notice';
import { href, navigate } from './router';
import { numberOf, textOf, useCart } from './use-store';
import type { CartLine } from './use-store';
import type { StoreDb } from './use-tideline';

const lineName = (l: CartLine): string => textOf(l.product, 'name', l.productId);

/** What stops the cart from checking out, as far as this replica knows (the server has the last word). */
function stockProblems(lines: readonly CartLine[]): string[] {
  return lines.flatMap((l) => {
    if (!l.product) return [`${l.productId} is no longer in the catalog: remove it.`];
    const stock = numberOf(l.product, 'stock') ?? 0;
    return l.qty > stock
      ? [`${lineName(l)}: only ${formatCount(stock)} left, ${formatCount(l.qty)} in your cart.`]
      : [];
  });
}

/**
 * The cart (owner-only, one document per user) and checkout: one `checkout`
 * mutation with an order id made here, which the server validates (stock
 * never below 0). It shows at once as a pending order; if the server refuses
 * it, it rolls back (the cart comes back) and the page says why.
 */
export function CartPage({ db, onFlash }: { db: StoreDb; onFlash: (flash: Flash) => void }) {
  const lines = useCart(db);
  const [notice, setNotice] = useState<NoticeState | null>(null);

  if (lines === undefined) return <p className="empty">Loading your cart…</p>;

  const total = lines.reduce((sum, l) => sum + (numberOf(l.product, 'price') ?? 0) * l.qty, 0);
  const problems = stockProblems(lines);

  const setQty = (line: CartLine, qty: number, done: string): void => {
    db.mutate.cartSet({ productId: line.productId, qty }).then(
      () => setNotice({ kind: 'ok', text: done }),
      (err: unknown) => setNotice({ kind: 'error', text: `Your cart was not changed: ${errorMessage(err)}` }),
    );
  };

  const placeOrder = (): void => {
    if (problems.length > 0) {
      setNotice({ kind: 'error', text: `Not ordered. ${problems.join(' ')}` });
      return;
    }
    // In the shopper's id namespace (owner-only collections require it), unique by the UUID.
    const orderId = orderIdOf(db.userId, crypto.randomUUID());
    db.mutate
      .checkout({
        orderId,
        lines: lines.map((l) => ({ productId: l.productId, qty: l.qty })),
        at: Date.now(),
        cartId: cartIdOf(db.userId),
      })
      .then(
        () => {
          onFlash({
            page: 'orders',
            text: 'Order submitted. Its state below follows the server live: pending on this device, then confirmed or rejected.',
          });
          navigate(href.orders);
        },
        (err: unknown) => setNotice({ kind: 'error', text: `Not ordered: ${errorMessage(err)}` }),
      );
  };

  return (
    <section className="card cart" aria-labelledby="cart-title">
      <div className="card-head">
        <h1 id="cart-title">Your cart</h1>
        <p className="hint">Kept in your replica and synced to your account: it is the same in every tab.</p>
      </div>
      <Notice notice={notice} onDismiss={() => setNotice(null)} />
      {lines.length === 0 ? (
        <p className="empty">
          Your cart is empty. <a href={href.catalog}>Browse the catalog</a>.
        </p>
      ) : (
        <>
          <ul className="cart-lines" aria-label="Cart">
            {lines.map((line) => (
              <CartLineItem
                key={line.productId}
                line={line}
                onSet={(qty) => setQty(line, qty, `${lineName(line)}: quantity set to ${formatCount(qty)}.`)}
                onRemove={() => setQty(line, 0, `Removed ${lineName(line)} from your cart.`)}
                onInvalid={(message) => setNotice({ kind: 'error', text: `Quantity not changed. ${message}` })}
              />
            ))}
          </ul>
          <div className="cart-foot">
            <p className="total">
              Total <strong data-testid="cart-total">{formatPrice(Math.round(total * 100) / 100)}</strong>
            </p>
            {problems.length > 0 && (
              <ul className="problems" aria-label="Stock problems">
                {problems.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            )}
            <button type="button" className="primary-action" onClick={placeOrder}>
              Place order
            </button>
          </div>
        </>
      )}
    </section>
  );
}

interface LineProps {
  line: CartLine;
  onSet: (qty: number) => void;
  onRemove: () => void;
  onInvalid: (message: string) => void;
}

function CartLineItem({ line, onSet, onRemove, onInvalid }: LineProps) {
  const [qty, setQty] = useState<string | null>(null);
  const inputId = useId();
  const titleId = useId();
  const name = lineName(line);
  const price = numberOf(line.product, 'price');

  const submit = (e: FormEvent): void => {
    e.preventDefault();
    const parsed = parseQuantity(qty ?? String(line.qty));
    if (!parsed.ok) {
      onInvalid(parsed.message);
      return;
    }
    setQty(null);
    if (parsed.value !== line.qty) onSet(parsed.value);
  };

  return (
    <li className="cart-line" aria-labelledby={titleId}>
      <div className="cart-line-name">
        <a id={titleId} href={href.product(line.productId)}>
          {name}
        </a>
        <span className="hint">
          {price === null ? '–' : formatPrice(price)} each · {textOf(line.product, 'category')}
        </span>
      </div>
      <form className="qty-form" onSubmit={submit} noValidate>
        <label htmlFor={inputId}>Quantity</label>
        <input
          id={inputId}
          type="text"
          inputMode="numeric"
          size={3}
          value={qty ?? String(line.qty)}
          onChange={(e) => setQty(e.target.value)}
        />
        <button type="submit" className="secondary">
          Update
        </button>
      </form>
      <span className="line-total">{price === null ? '–' : formatPrice(Math.round(price * line.qty * 100) / 100)}</span>
      <button type="button" className="quiet danger" onClick={onRemove} aria-describedby={titleId}>
        Remove
      </button>
    </li>
  );
}
