import { expect as baseExpect, test as base } from '@playwright/test';
import type { Locator, Page } from '@playwright/test';
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

/** Formats a count as the status bar does. */
export const count = (n: number): string => new Intl.NumberFormat('en-US').format(n);
