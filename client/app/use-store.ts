import { useEffect, useState } from 'react';
import { cartIdOf } from '../../shared/apps/store';
import type { Doc } from 'tideline/schema';
import type { StoreDb } from './use-tideline';
import { useQuery } from 'tideline/react';

/** Live reads of the local replica that several pages share. */

export interface CartLine {
  productId: string;
  qty: number;
  /** The product as the replica has it now; undefined if it is gone. */
  product: Doc | undefined;
}

const lineOf = (value: unknown): { productId: string; qty: number } | null => {
  if (typeof value !== 'object' || value === null) return null;
  const { productId, qty } = value as Record<string, unknown>;
  return typeof productId === 'string' && typeof qty === 'number' ? { productId, qty } : null;
};

/** The signed-in user's cart (`cartIdOf(userId)`, `<userId>/cart`), with its products; undefined while loading. */
export function useCart(db: StoreDb): CartLine[] | undefined {
  return useQuery(db, async () => {
    const cart = await db.collection('carts').get(cartIdOf(db.userId));
    const raw = Array.isArray(cart?.['lines']) ? cart['lines'] : [];
    const lines = raw.map(lineOf).filter((l) => l !== null);
    const products = await db.collection('products').table.bulkGet(lines.map((l) => l.productId));
    return lines.map((l, i) => ({ ...l, product: products[i] }));
  }, [db]);
}

export const cartCount = (lines: readonly CartLine[]): number => lines.reduce((n, l) => n + l.qty, 0);

export const textOf = (doc: Doc | undefined, field: string, fallback = ''): string => {
  const v = doc?.[field];
  return typeof v === 'string' ? v : fallback;
};

export const numberOf = (doc: Doc | undefined, field: string): number | null => {
  const v = doc?.[field];
  return typeof v === 'number' ? v : null;
};

/** Whether the browser says it has a network; the status bar says Offline at once when it has none. */
export function useBrowserOnline(): boolean {
  const [online, setOnline] = useState(() => navigator.onLine);
  useEffect(() => {
    const update = (): void => setOnline(navigator.onLine);
    window.addEventListener('online', update);
    window.addEventListener('offline', update);
    return () => {
      window.removeEventListener('online', update);
      window.removeEventListener('offline', update);
    };
  }, []);
  return online;
}
