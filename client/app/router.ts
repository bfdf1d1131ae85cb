import { useEffect, useState } from 'react';

/**
 * Hash routes (`#/cart`): every page is the same index.html, which the
 * service worker serves offline, and a reload keeps the page.
 */
export type Route =
  | { page: 'catalog' }
  | { page: 'product'; id: string }
  | { page: 'cart' }
  | { page: 'orders' }
  | { page: 'staff' }
  | { page: 'notes' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '');
  const product = /^\/product\/([^/]+)$/.exec(path);
  if (product?.[1]) return { page: 'product', id: decodeURIComponent(product[1]) };
  switch (path) {
    case '/cart':
      return { page: 'cart' };
    case '/orders':
      return { page: 'orders' };
    case '/staff':
      return { page: 'staff' };
    case '/notes':
      return { page: 'notes' };
    default:
      return { page: 'catalog' };
  }
}

export const href = {
  catalog: '#/',
  product: (id: string): string => `#/product/${encodeURIComponent(id)}`,
  cart: '#/cart',
  orders: '#/orders',
  staff: '#/staff',
  notes: '#/notes',
} as const;

export function navigate(to: string): void {
  location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = (): void => {
      setRoute(parseRoute(location.hash));
      window.scrollTo(0, 0);
    };
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
