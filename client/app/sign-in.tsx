import { useState } from 'react';
import type { FormEvent } from 'react';
import { signIn } from './session';
import type { Session } from './session';

/** Development sign-in: any name gets a token; `staff` also gets the staff role. */
export function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = (e: FormEvent): void => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    signIn(name.trim()).then(onSignedIn, (err: unknown) => {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    });
  };

  return (
    <section className="card sign-in" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">Welcome to Tideline Store</h1>
      <p>
        Sign in with any name. The catalog, your cart and your orders live in this browser (IndexedDB) and sync with the
        server in the background: search and shop with no network, and watch changes from other tabs and shoppers arrive
        live.
      </p>
      <form onSubmit={submit}>
        <label htmlFor="sign-in-name">Your name</label>
        <div className="row">
          <input
            id="sign-in-name"
            type="text"
            autoComplete="username"
            placeholder="e.g. alice"
            pattern="[A-Za-z0-9_.\-]{1,64}"
            title="1 to 64 letters, digits, _ . -"
            required
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
          <button type="submit" disabled={busy || !name.trim()}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </div>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <p className="hint">
        Development sign-in: no password. The name <code>staff</code> gets the staff role: edit products, restock and
        see every order.
      </p>
    </section>
  );
}
