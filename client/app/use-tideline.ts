import { useEffect, useState } from 'react';
import { storeSchema } from '../../shared/apps/store';
import type { StoreSchema } from '../../shared/apps/store';
import { open } from 'tideline/client';
import type { Tideline } from 'tideline/client';

export type StoreDb = Tideline<StoreSchema>;

export type Opened = { db: StoreDb; error: null } | { db: null; error: string | null };

/** Opens the user's replica for `token` (null: signed out) and closes it when the token changes or the app unmounts. */
export function useTideline(token: string | null): Opened {
  const [opened, setOpened] = useState<Opened>({ db: null, error: null });
  useEffect(() => {
    if (token === null) return undefined;
    let cancelled = false;
    let db: StoreDb | null = null;
    open(storeSchema, { servers: [location.origin], token }).then(
      (t) => {
        if (cancelled) {
          t.close();
          return;
        }
        db = t;
        setOpened({ db: t, error: null });
      },
      (err: unknown) => {
        if (!cancelled) setOpened({ db: null, error: err instanceof Error ? err.message : String(err) });
      },
    );
    return () => {
      cancelled = true;
      db?.close();
      setOpened({ db: null, error: null });
    };
  }, [token]);
  return opened;
}
