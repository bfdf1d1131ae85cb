import { useEffect, useState } from 'react';
import { CatalogPreview } from './catalog-preview';
import { NotesBoard } from './notes-board';
import { clearSession, loadSession, saveSession, SESSION_KEY } from './session';
import type { Session } from './session';
import { SignIn } from './sign-in';
import { StatusBar } from './status-bar';
import { useTideline } from './use-tideline';

/** The live sync demo: sign in, then a shared notes board and a catalog preview over the local replica. */
export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const { db, error } = useTideline(session?.token ?? null);

  // Signing in or out in one tab does the same in the others.
  useEffect(() => {
    const onStorage = (e: StorageEvent): void => {
      if (e.key === SESSION_KEY || e.key === null) setSession(loadSession());
    };
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, []);

  const signedIn = (s: Session): void => {
    saveSession(s);
    setSession(s);
  };
  const signOut = (): void => {
    clearSession();
    setSession(null);
  };

  return (
    <>
      <StatusBar session={session} db={db} onSignOut={signOut} />
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
          <div className="columns">
            <NotesBoard db={db} />
            <CatalogPreview db={db} />
          </div>
        )}
      </main>
    </>
  );
}
