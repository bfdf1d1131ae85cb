import { useEffect, useState } from 'react';
import { CartPage } from './cart-page';
import { CatalogPage, EMPTY_CATALOG_FORM } from './catalog-page';
import type { CatalogForm } from './catalog-page';
import { NotesBoard } from './notes-board';
import { OrdersPage } from './orders-page';
import { ProductPage } from './product-page';
import { useRoute } from './router';
import type { Route } from './router';
import { clearSession, loadSession, saveSession, SESSION_KEY } from './session';
import type { Session } from './session';
import { SignIn } from './sign-in';
import { StaffPage } from './staff-page';
import { useReconnectWhenOnline } from 'tideline/react';
import { StatusBar } from './status-bar';
import { useTideline } from './use-tideline';
import type { StoreDb } from './use-tideline';

/** A message for the page the user is sent to ("Order placed"), gone once they leave it. */
export interface Flash {
  page: Route['page'];
  text: string;
}

/** The storefront: sign in, then the catalog, cart, orders and staff pages over the local replica. */
export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const { db, error } = useTideline(session?.token ?? null);
  const route = useRoute();
  const [catalogForm, setCatalogForm] = useState<CatalogForm>(EMPTY_CATALOG_FORM);
  const [flash, setFlash] = useState<Flash | null>(null);
  useReconnectWhenOnline(db);

  // Signing in or out in one tab does the same in the others.
  useEffect(() => {
    const onStorage = (e: StorageEvent): void => {
      if (e.key === SESSION_KEY || e.key === null) setSession(loadSession());
    };
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, []);

  useEffect(() => {
    setFlash((f) => (f && f.page !== route.page ? null : f));
  }, [route.page]);

  const signedIn = (s: Session): void => {
    saveSession(s);
    setSession(s);
  };
  const signOut = (): void => {
    clearSession();
    setSession(null);
    setCatalogForm(EMPTY_CATALOG_FORM);
  };

  return (
    <>
      <StatusBar session={session} db={db} route={route} onSignOut={signOut} />
      <main className="page">
        {session === null ? (
          <SignIn onSignedIn={signedIn} />
        ) : error !== null ? (
          <section className="card" role="alert">
            <h2>Could not open your replica</h2>
            <p>{error}</p>
            <button type="button" onClick={signOut}>
              Sign in again
            </button>
          </section>
        ) : db === null ? (
          <p className="empty">Opening your replica…</p>
        ) : (
          <>
            {flash && flash.page === route.page && (
              <p role="status" className="flash">
                {flash.text}
              </p>
            )}
            <CurrentPage
              db={db}
              route={route}
              staff={session.roles.includes('staff')}
              catalogForm={catalogForm}
              onCatalogForm={setCatalogForm}
              onFlash={setFlash}
            />
          </>
        )}
      </main>
    </>
  );
}

interface PageProps {
  db: StoreDb;
  route: Route;
  staff: boolean;
  catalogForm: CatalogForm;
  onCatalogForm: (form: CatalogForm) => void;
  onFlash: (flash: Flash) => void;
}

function CurrentPage({ db, route, staff, catalogForm, onCatalogForm, onFlash }: PageProps) {
  switch (route.page) {
    case 'catalog':
      return <CatalogPage db={db} form={catalogForm} onForm={onCatalogForm} />;
    case 'product':
      return <ProductPage db={db} id={route.id} staff={staff} />;
    case 'cart':
      return <CartPage db={db} onFlash={onFlash} />;
    case 'orders':
      return <OrdersPage db={db} />;
    case 'staff':
      return staff ? (
        <StaffPage db={db} />
      ) : (
        <section className="card">
          <h1>Staff only</h1>
          <p>This page is for staff. Sign in as “staff” to edit products, restock and see every order.</p>
        </section>
      );
    case 'notes':
      return <NotesBoard db={db} />;
  }
}
