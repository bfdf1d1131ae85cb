import { useId } from 'react';
import type { OutboxEntry } from 'tideline/client';
import { formatCount, formatDateTime, formatPrice, shortId } from './format';
import { orderViews, productIdsOf } from './orders';
import type { OrderState, OrderView } from './orders';
import { href } from './router';
import type { StoreDb } from './use-tideline';
import { useQuery } from 'tideline/react';

const STATE_LABEL: Record<OrderState, string> = {
  pending: 'Pending on this device',
  confirmed: 'Confirmed',
  rejected: 'Rejected',
};

/**
 * The signed-in user's orders, each with its state: the order documents of
 * the replica, the checkouts still in the outbox (`_outbox`), and the
 * rejected ones (`_rejections`), all read live.
 */
export function OrdersPage({ db }: { db: StoreDb }) {
  const orders = useQuery(db, async () => {
    const [docs, outbox, rejections] = await Promise.all([
      db.collection('orders').table.where('owner').equals(db.userId).toArray(),
      db.db.table<OutboxEntry, number>('_outbox').toArray(),
      db.rejections(),
    ]);
    const ids = productIdsOf(outbox, rejections);
    const found = await db.collection('products').table.bulkGet(ids);
    const products = new Map(found.filter((p) => p !== undefined).map((p) => [p.id, p]));
    return orderViews(docs, outbox, rejections, products, db.userId);
  }, [db]);

  return (
    <section className="card" aria-labelledby="orders-title">
      <div className="card-head">
        <h1 id="orders-title">Your orders</h1>
        <p className="hint">
          An order is pending while its checkout waits on this device for the server, confirmed once the server commits
          it, and rejected (with the reason) if the server refuses it.
        </p>
      </div>
      {orders === undefined ? (
        <p className="empty">Loading…</p>
      ) : orders.length === 0 ? (
        <p className="empty">
          No orders yet. <a href={href.catalog}>Browse the catalog</a>.
        </p>
      ) : (
        <OrderList label="Your orders" orders={orders} showOwner={false} />
      )}
    </section>
  );
}

export function OrderList({ label, orders, showOwner }: { label: string; orders: OrderView[]; showOwner: boolean }) {
  return (
    <ul className="orders" aria-label={label}>
      {orders.map((o) => (
        <OrderCard key={o.id} order={o} showOwner={showOwner} />
      ))}
    </ul>
  );
}

function OrderCard({ order, showOwner }: { order: OrderView; showOwner: boolean }) {
  const titleId = useId();
  const items = order.lines.reduce((n, l) => n + l.qty, 0);
  return (
    <li className="order" data-state={order.state} aria-labelledby={titleId}>
      <div className="order-head">
        <h3 id={titleId} title={order.id}>
          {/* The id's last segment: the part before it is the shopper's namespace (`<user>/order/`). */}
          Order {shortId(order.id.slice(order.id.lastIndexOf('/') + 1))}
        </h3>
        <span className="state" data-state={order.state}>
          {STATE_LABEL[order.state]}
        </span>
      </div>
      <p className="hint">
        {order.createdAt > 0 ? formatDateTime(order.createdAt) : 'Undated'}
        {showOwner && order.owner && <> · by {order.owner}</>} · {formatCount(items)} {items === 1 ? 'item' : 'items'}
        {order.total !== null && <> · {formatPrice(order.total)}</>}
      </p>
      <ul className="order-lines">
        {order.lines.map((l) => (
          <li key={l.productId}>
            {formatCount(l.qty)} × <a href={href.product(l.productId)}>{l.name}</a>
            {l.price !== null && <span className="hint"> at {formatPrice(l.price)}</span>}
          </li>
        ))}
      </ul>
      {order.reason && (
        <p className={order.state === 'rejected' ? 'reason error' : 'reason hint'}>
          {order.state === 'rejected' ? 'Why: ' : ''}
          {order.reason}
        </p>
      )}
    </li>
  );
}
