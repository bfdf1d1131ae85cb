import { useEffect, useState } from 'react';
import { connectionLabel, describeMutation, describeRejection, formatCount, formatTime } from './format';
import { registerServiceWorker } from './register-sw';
import { href } from './router';
import type { Route } from './router';
import type { Session } from './session';
import { cartCount, useBrowserOnline, useCart } from './use-store';
import type { StoreDb } from './use-tideline';
import { useRejections, useSyncStatus } from 'tideline/react';

interface StatusBarProps {
  session: Session | null;
  db: StoreDb | null;
  route: Route;
  onSignOut: () => void;
}

/** The top bar: navigation and, always in sight, the sync state. */
export function StatusBar({ session, db, route, onSignOut }: StatusBarProps) {
  if (session && db) return <LiveStatusBar session={session} db={db} route={route} onSignOut={onSignOut} />;
  return (
    <header className="topbar">
      <div className="topbar-row">
        <Brand />
        {session && <UserMenu session={session} onSignOut={onSignOut} />}
      </div>
      <section className="status" aria-label="Sync status">
        <output className="badge" data-state="stopped" aria-label="Connection">
          {session ? 'Opening…' : 'Signed out'}
        </output>
      </section>
    </header>
  );
}

function Brand() {
  return (
    <a className="brand" href={href.catalog}>
      <span className="brand-mark" aria-hidden="true">
        ≈
      </span>
      Tideline Store
    </a>
  );
}

function UserMenu({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  return (
    <div className="user">
      <span className="user-name">
        {session.userId}
        {session.roles.includes('staff') && <span className="tag">staff</span>}
      </span>
      <button type="button" className="quiet" onClick={onSignOut}>
        Sign out
      </button>
    </div>
  );
}

function NavBar({ db, route, staff }: { db: StoreDb; route: Route; staff: boolean }) {
  const cart = useCart(db);
  const items = cart ? cartCount(cart) : 0;
  const current = (page: Route['page'] | readonly Route['page'][]): { 'aria-current'?: 'page' } =>
    ([page].flat() as string[]).includes(route.page) ? { 'aria-current': 'page' } : {};
  return (
    <nav className="nav" aria-label="Store">
      <a href={href.catalog} {...current(['catalog', 'product'])}>
        Catalog
      </a>
      <a href={href.cart} {...current('cart')}>
        Cart
        <span className="count" aria-label={`${items} ${items === 1 ? 'item' : 'items'}`}>
          {formatCount(items)}
        </span>
      </a>
      <a href={href.orders} {...current('orders')}>
        Orders
      </a>
      {staff && (
        <a href={href.staff} {...current('staff')}>
          Staff
        </a>
      )}
      <a href={href.notes} {...current('notes')}>
        Live notes
      </a>
    </nav>
  );
}

/** Whether the app shell is cached for offline use (the service worker is active); null while it is being set up. */
function useShellCached(): boolean | null {
  const [cached, setCached] = useState<boolean | null>(null);
  useEffect(() => {
    let live = true;
    void registerServiceWorker().then((ok) => live && setCached(ok));
    return () => {
      live = false;
    };
  }, []);
  return cached;
}

interface LiveStatusBarProps {
  session: Session;
  db: StoreDb;
  route: Route;
  onSignOut: () => void;
}

function LiveStatusBar({ session, db, route, onSignOut }: LiveStatusBarProps) {
  const { status, leader } = useSyncStatus(db);
  const { all: rejections, latest: latestRejection, dismiss: dismissRejection } = useRejections(db);
  const browserOnline = useBrowserOnline();
  const shellCached = useShellCached();
  const waiting = !leader && status.state === 'stopped';
  const problem = status.state === 'backoff' || status.state === 'failed' ? status.lastError?.message : undefined;
  const offline = !browserOnline && status.state !== 'failed';
  return (
    <header className="topbar">
      <div className="topbar-row">
        <Brand />
        <NavBar db={db} route={route} staff={session.roles.includes('staff')} />
        <UserMenu session={session} onSignOut={onSignOut} />
      </div>
      <section className="status" aria-label="Sync status">
        <output
          className="badge"
          data-state={offline ? 'offline' : status.state}
          aria-label="Connection"
          title={offline ? 'This browser has no network' : problem}
        >
          {offline ? 'Offline' : waiting ? 'Waiting' : connectionLabel(status)}
        </output>
        <span className="item">
          <span className="item-label">Pending</span>
          <output aria-label="Pending changes" aria-live="off">
            {formatCount(status.pending)}
          </output>
        </span>
        <span className="item">
          <span className="item-label">Synced</span>
          <output aria-label="Last synced" aria-live="off">
            {status.lastSyncedAt === null
              ? 'not yet'
              : `LSN ${formatCount(status.lastSyncedLsn)} at ${formatTime(status.lastSyncedAt)}`}
          </output>
        </span>
        <span className="item">
          <span className="item-label">Held by</span>
          <output aria-label="Connection holder" aria-live="off">
            {leader ? 'this tab' : 'another tab'}
          </output>
        </span>
        <span className="item">
          <span className="item-label">Offline use</span>
          <output aria-label="Offline use" aria-live="off">
            {shellCached === null ? 'not yet' : shellCached ? 'ready' : 'unavailable'}
          </output>
        </span>
        {rejections.length > 0 && (
          <details className="rejections">
            <summary>{formatCount(rejections.length)} rejected</summary>
            <ul aria-label="Rejected changes">
              {rejections
                .slice(-20)
                .reverse()
                .map((r) => (
                  <li key={r.seq}>
                    <strong>{describeMutation(r.name, r.args)}</strong>
                    <span>
                      {r.error.code}: {r.error.message}
                    </span>
                    <time dateTime={new Date(r.at).toISOString()}>{formatTime(r.at)}</time>
                  </li>
                ))}
            </ul>
          </details>
        )}
        {problem && status.state === 'failed' && (
          <span className="problem">
            {problem}
            {status.lastError?.code === 'UNAUTHORIZED' && (
              <button type="button" className="quiet" onClick={onSignOut}>
                Sign in again
              </button>
            )}
          </span>
        )}
      </section>
      {latestRejection && (
        <div role="alert" className="banner">
          <span>{describeRejection(latestRejection)}</span>
          <button type="button" className="quiet" onClick={dismissRejection}>
            Dismiss
          </button>
        </div>
      )}
    </header>
  );
}
