import { expect as baseExpect, test as base } from '@playwright/test';
import type { Browser, BrowserContext, Locator, Page, WebSocketRoute } from '@playwright/test';
import type { Doc } from '../../shared/json';
import { startAppServer } from './app-server';
import type { AppServer } from './app-server';

/** Sync across pages and processes takes a moment; every wait is on a condition, never a fixed sleep. */
export const expect = baseExpect.configure({ timeout: 15_000 });

/** Each test gets its own seeded server; its log is attached when the test fails. */
export const test = base.extend<{ app: AppServer }>({
  // Playwright reads fixture dependencies from the destructuring pattern: this one has none.
  // eslint-disable-next-line no-empty-pattern
  app: async ({}, use, testInfo) => {
    const app = await startAppServer();
    try {
      await use(app);
    } finally {
      if (testInfo.status !== testInfo.expectedStatus) {
        await testInfo.attach('server.log', { body: app.output(), contentType: 'text/plain' });
      }
      await app.stop();
    }
  },
});

/** The status bar's indicators. */
export const statusBar = (page: Page) => ({
  connection: page.getByRole('status', { name: 'Connection', exact: true }),
  pending: page.getByRole('status', { name: 'Pending changes', exact: true }),
  synced: page.getByRole('status', { name: 'Last synced', exact: true }),
  holder: page.getByRole('status', { name: 'Connection holder', exact: true }),
  offlineUse: page.getByRole('status', { name: 'Offline use', exact: true }),
});

/**
 * Brings a tab to the front before acting in it, as a user would. Chromium
 * throttles rendering in background tabs, which slows Playwright's
 * actionability checks there by a second or more per action.
 */
export async function inFront(page: Page): Promise<Page> {
  await page.bringToFront();
  return page;
}

export async function signIn(page: Page, name: string): Promise<void> {
  await inFront(page);
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // The first sync brings the whole seeded catalog (2,001 changes): a few seconds, more on a busy machine.
  await expect(statusBar(page).connection).toHaveText('Online', { timeout: 40_000 });
}

/** A new browser (context) signed in as `user`, on the catalog; `net` cuts its connection at will. */
export async function openAs(
  browser: Browser,
  app: AppServer,
  user: string,
): Promise<{ context: BrowserContext; page: Page; net: NetworkSwitch }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const net = await networkSwitch(context);
  const page = await context.newPage();
  await page.goto(app.url);
  await signIn(page, user);
  return { context, page, net };
}

/** Follows a link of the top navigation ("Catalog", "Cart", "Orders", "Staff", "Live notes"). */
export async function goTo(page: Page, name: 'Catalog' | 'Cart' | 'Orders' | 'Staff' | 'Live notes'): Promise<void> {
  await inFront(page);
  await page
    .getByRole('navigation', { name: 'Store' })
    .getByRole('link', { name: new RegExp(`^${name}`) })
    .click();
}

/** Opens a product's page through the catalog search, as a shopper would. */
export async function openProduct(page: Page, name: string): Promise<void> {
  await goTo(page, 'Catalog');
  await page.getByRole('searchbox', { name: 'Search products' }).fill(name);
  await productCard(page, name).getByRole('link', { name, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name, exact: true })).toBeVisible();
}

/** A product's card in the catalog grid. */
export const productCard = (page: Page, name: string): Locator =>
  page.getByRole('list', { name: 'Products' }).getByRole('listitem', { name, exact: true });

/** The orders of the Orders page, newest first (each has a heading; its lines are list items too). */
export const orders = (page: Page): Locator =>
  page
    .getByRole('list', { name: 'Your orders' })
    .getByRole('listitem')
    .filter({ has: page.getByRole('heading') });

export async function addNote(page: Page, text: string): Promise<void> {
  await inFront(page);
  await page.getByRole('textbox', { name: 'New note' }).fill(text);
  await page.getByRole('button', { name: 'Add note' }).click();
}

/** The list item of the note whose text is exactly `text`. */
export const note = (page: Page, text: string): Locator =>
  page
    .getByRole('list', { name: 'Notes' })
    .getByRole('listitem')
    .filter({ has: page.getByText(text, { exact: true }) });

/** Counts the page's Socket.IO WebSockets: how many it opened, and how many are open now. */
export function trackSockets(page: Page): { opened(): number; open(): number } {
  let opened = 0;
  let open = 0;
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/socket.io/')) return;
    opened++;
    open++;
    ws.on('close', () => open--);
  });
  return { opened: () => opened, open: () => open };
}

export interface NetworkSwitch {
  /**
   * A hard cut: the browser goes offline (`setOffline`, which fires the
   * page's `offline` event and fails new requests, the service worker's
   * included) and every Socket.IO WebSocket is closed at both ends, since
   * `setOffline` alone leaves an open WebSocket up. New ones are refused
   * until `goOnline`.
   */
  goOffline(): Promise<void>;
  goOnline(): Promise<void>;
  /** Holds the `push` messages the pages send (everything else flows) until `releasePushes`. */
  holdPushes(): void;
  /** How many pushes are held now. */
  heldPushes(): number;
  /** Sends the held pushes to the server, in order, and stops holding. */
  releasePushes(): void;
}

/** A Socket.IO event frame carrying `push`: `42`, the namespace (`/sync,`), an optional ack id, the payload. */
const isPush = (message: string | Buffer): boolean =>
  typeof message === 'string' && /^42(\/[^,]*,)?\d*\["push"/.test(message);

/**
 * Routes the context's Socket.IO WebSockets through Playwright, so a test
 * can cut them (see ../shared/TOOLCHAIN.md: `setOffline` does not close an
 * open WebSocket) or hold the pages' pushes. Call before the context opens a
 * page.
 */
export async function networkSwitch(context: BrowserContext): Promise<NetworkSwitch> {
  let offline = false;
  let holding = false;
  const held: Array<{ server: WebSocketRoute; message: string | Buffer }> = [];
  // Closing one end of a route closes the other (no onClose handlers are set); closed ones stay listed.
  const routes: Array<{ page: WebSocketRoute; server: WebSocketRoute }> = [];
  await context.routeWebSocket(/\/socket\.io\//, async (page) => {
    if (offline) {
      // Refused as a real network would: the page's socket fails. (Closing a route that never
      // connected leaves the page's socket open in Playwright 1.65, so close the server end.)
      await page
        .connectToServer()
        .close({ code: 4000, reason: 'offline' })
        .catch(() => undefined);
      return;
    }
    const server = page.connectToServer();
    // Messages from the server flow as they are; those from the page go through here.
    page.onMessage((message) => {
      if (holding && isPush(message)) held.push({ server, message });
      else server.send(message);
    });
    routes.push({ page, server });
  });
  return {
    async goOffline() {
      offline = true;
      await context.setOffline(true);
      for (const { page, server } of routes.splice(0)) {
        await server.close({ code: 4000, reason: 'offline' }).catch(() => undefined);
        await page.close({ code: 4000, reason: 'offline' }).catch(() => undefined);
      }
    },
    async goOnline() {
      offline = false;
      await context.setOffline(false);
    },
    holdPushes() {
      holding = true;
    },
    heldPushes: () => held.length,
    releasePushes() {
      holding = false;
      for (const { server, message } of held.splice(0)) server.send(message);
    },
  };
}

/**
 * A document of the page's IndexedDB replica (`tideline-store-<user>`), read
 * with the raw IndexedDB API, independent of the app.
 */
export async function replicaDoc(page: Page, user: string, table: string, id: string): Promise<Doc | undefined> {
  return page.evaluate(
    ([dbName, table, id]) =>
      new Promise<Doc | undefined>((resolve, reject) => {
        const req = indexedDB.open(dbName);
        req.onerror = () => reject(new Error(String(req.error)));
        req.onsuccess = () => {
          const db = req.result;
          const get = db.transaction(table, 'readonly').objectStore(table).get(id);
          get.onsuccess = () => {
            db.close();
            resolve(get.result as Doc | undefined);
          };
          get.onerror = () => reject(new Error(String(get.error)));
        };
      }),
    [`tideline-store-${user}`, table, id] as const,
  );
}

/** How many products of the page's replica have a stock below 0 (read through its stock index). */
export async function negativeStockInReplica(page: Page, user: string): Promise<number> {
  return page.evaluate(
    (dbName) =>
      new Promise<number>((resolve, reject) => {
        const req = indexedDB.open(dbName);
        req.onerror = () => reject(new Error(String(req.error)));
        req.onsuccess = () => {
          const db = req.result;
          const count = db
            .transaction('products', 'readonly')
            .objectStore('products')
            .index('stock')
            .count(IDBKeyRange.upperBound(0, true));
          count.onsuccess = () => {
            db.close();
            resolve(count.result);
          };
          count.onerror = () => reject(new Error(String(count.error)));
        };
      }),
    `tideline-store-${user}`,
  );
}

/** Formats a count as the status bar does. */
export const count = (n: number): string => new Intl.NumberFormat('en-US').format(n);

/** Formats a price as the app does. */
export const price = (n: number): string =>
  new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(n);
