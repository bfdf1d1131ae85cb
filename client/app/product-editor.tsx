import { useEffect, useId, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import type { Doc, JsonValue } from 'tideline/schema';
import { errorMessage, formatCount, formatPrice } from './format';
import { parseName, parsePrice, parseRestock, parseStock } from './input';
import { Notice } from './notice';
import type { NoticeState } from './notice';
import { numberOf, textOf } from './use-store';
import type { StoreDb } from './use-tideline';

interface Draft {
  name: string;
  price: string;
  stock: string;
}

const draftOf = (p: Doc): Draft => ({
  name: textOf(p, 'name'),
  price: String(numberOf(p, 'price') ?? ''),
  stock: String(numberOf(p, 'stock') ?? ''),
});

/**
 * Staff edit a product: name, price and stock through one `patch` of the
 * changed fields, and restock through `inc`, which adds to whatever the
 * stock is when the server applies it (purchases meanwhile still count).
 * A field nobody is editing follows live changes from elsewhere.
 */
export function ProductEditor({ db, product }: { db: StoreDb; product: Doc }) {
  const [draft, setDraft] = useState<Draft>(() => draftOf(product));
  const seen = useRef<Draft>(draftOf(product));
  const [restock, setRestock] = useState('');
  const [notice, setNotice] = useState<NoticeState | null>(null);
  const ids = { name: useId(), price: useId(), stock: useId(), restock: useId() };
  const name = textOf(product, 'name', product.id);

  // Follow live changes in the fields the user has not touched.
  const live = draftOf(product);
  const liveKey = JSON.stringify(live);
  useEffect(() => {
    const before = seen.current;
    seen.current = live;
    setDraft((d) => ({
      name: d.name === before.name ? live.name : d.name,
      price: d.price === before.price ? live.price : d.price,
      stock: d.stock === before.stock ? live.stock : d.stock,
    }));
    // `live` is derived from `product`; its JSON form is the dependency.
  }, [liveKey]);

  const save = (e: FormEvent): void => {
    e.preventDefault();
    const parsedName = parseName(draft.name);
    const price = parsePrice(draft.price);
    const stock = parseStock(draft.stock);
    const problems = [
      parsedName.ok ? null : parsedName.message,
      price.ok ? null : price.message,
      stock.ok ? null : stock.message,
    ].filter((p) => p !== null);
    if (!parsedName.ok || !price.ok || !stock.ok) {
      setNotice({ kind: 'error', text: `Not saved. ${problems.join(' ')}` });
      return;
    }
    const set: Record<string, JsonValue> = {};
    if (parsedName.value !== textOf(product, 'name')) set['name'] = parsedName.value;
    if (price.value !== numberOf(product, 'price')) set['price'] = price.value;
    if (stock.value !== numberOf(product, 'stock')) set['stock'] = stock.value;
    if (Object.keys(set).length === 0) {
      setNotice({ kind: 'ok', text: 'Nothing to save: no field changed.' });
      return;
    }
    db.mutate.patch({ collection: 'products', id: product.id, set }).then(
      () => {
        const changed = Object.keys(set).join(', ');
        setNotice({
          kind: 'ok',
          text: `Saved ${changed} of ${parsedName.value}; every shopper sees it once it syncs.`,
        });
      },
      (err: unknown) => setNotice({ kind: 'error', text: `Not saved: ${errorMessage(err)}` }),
    );
  };

  const addStock = (e: FormEvent): void => {
    e.preventDefault();
    const amount = parseRestock(restock);
    if (!amount.ok) {
      setNotice({ kind: 'error', text: `Not restocked. ${amount.message}` });
      return;
    }
    db.mutate.inc({ collection: 'products', id: product.id, field: 'stock', by: amount.value }).then(
      () => {
        setRestock('');
        setNotice({ kind: 'ok', text: `Added ${formatCount(amount.value)} units of ${name} to stock.` });
      },
      (err: unknown) => setNotice({ kind: 'error', text: `Not restocked: ${errorMessage(err)}` }),
    );
  };

  return (
    <section className="card editor" aria-labelledby={`${ids.name}-title`}>
      <div className="card-head">
        <h2 id={`${ids.name}-title`}>Edit {name}</h2>
        <p className="hint">
          Now {formatPrice(product['price'])}, {formatCount(numberOf(product, 'stock') ?? 0)} in stock.
        </p>
      </div>
      <form className="editor-form" onSubmit={save} noValidate>
        <label htmlFor={ids.name}>Name</label>
        <input
          id={ids.name}
          type="text"
          value={draft.name}
          onChange={(e) => setDraft({ ...draft, name: e.target.value })}
        />
        <label htmlFor={ids.price}>Price</label>
        <input
          id={ids.price}
          type="text"
          inputMode="decimal"
          value={draft.price}
          onChange={(e) => setDraft({ ...draft, price: e.target.value })}
        />
        <label htmlFor={ids.stock}>Stock</label>
        <input
          id={ids.stock}
          type="text"
          inputMode="numeric"
          value={draft.stock}
          onChange={(e) => setDraft({ ...draft, stock: e.target.value })}
        />
        <div className="form-actions">
          <button type="submit">Save changes</button>
          <button type="button" className="quiet" onClick={() => setDraft(draftOf(product))}>
            Reset
          </button>
        </div>
      </form>
      <form className="restock-form" onSubmit={addStock} noValidate>
        <label htmlFor={ids.restock}>Restock amount</label>
        <div className="row">
          <input
            id={ids.restock}
            type="text"
            inputMode="numeric"
            placeholder="e.g. 25"
            value={restock}
            onChange={(e) => setRestock(e.target.value)}
          />
          <button type="submit" className="secondary">
            Restock
          </button>
        </div>
      </form>
      <Notice notice={notice} onDismiss={() => setNotice(null)} />
    </section>
  );
}
