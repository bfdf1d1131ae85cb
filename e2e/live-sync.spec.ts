import type { Browser, Page } from '@playwright/test';
import { demoProducts } from '../server/seed';
import { addNote, count, expect, inFront, note, signIn, statusBar, test, trackSockets } from './support/fixtures';
import type { AppServer } from './support/app-server';

/**
 * The live demo page (client/app) against a real server process: two tabs of
 * one profile share one replica and one connection; two users see each
 * other's notes; the catalog preview reads the local replica.
 */

async function openAs(browser: Browser, app: AppServer, user: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(app.url);
  await signIn(page, user);
  return page;
}

test('two tabs of one profile: live notes, one connection', async ({ app, context }, testInfo) => {
  const tab1 = await context.newPage();
  const tab2 = await context.newPage();
  const sockets1 = trackSockets(tab1);
  const sockets2 = trackSockets(tab2);

  await tab1.goto(app.url);
  await signIn(tab1, 'alice');
  await expect(statusBar(tab1).holder).toHaveText('this tab');
  const seeded = (await app.adminStatus()).headLsn;

  // The second tab signs in from the shared session, follows the first and shows its status.
  await tab2.goto(app.url);
  await expect(statusBar(tab2).holder).toHaveText('another tab');
  await expect(statusBar(tab2).connection).toHaveText('Online');
  await expect(note(tab2, 'Welcome to Tideline: edit me in two tabs.')).toBeVisible();

  await addNote(tab1, 'Hello from tab 1');
  await expect(note(tab2, 'Hello from tab 1')).toBeVisible();

  // The follower writes to the shared outbox; the leader pushes it.
  await addNote(tab2, 'Hello from tab 2');
  await expect(note(tab1, 'Hello from tab 2')).toBeVisible();
  await expect.poll(async () => (await app.adminStatus()).headLsn).toBe(seeded + 2);
  for (const tab of [tab1, tab2]) {
    await expect(statusBar(tab).synced).toContainText(`LSN ${count(seeded + 2)}`);
    await expect(statusBar(tab).pending).toHaveText('0');
  }

  // Edit in one tab, delete in the other.
  await inFront(tab2);
  await note(tab2, 'Hello from tab 1').getByRole('button', { name: 'Edit' }).click();
  await tab2.getByRole('textbox', { name: 'Note text' }).fill('Edited in tab 2');
  await tab2.getByRole('button', { name: 'Save' }).click();
  await expect(note(tab1, 'Edited in tab 2')).toBeVisible();
  await inFront(tab1);
  await note(tab1, 'Hello from tab 2').getByRole('button', { name: 'Delete' }).click();
  await expect(note(tab2, 'Hello from tab 2')).toHaveCount(0);
  await expect.poll(async () => (await app.adminStatus()).headLsn).toBe(seeded + 4);
  await expect(statusBar(tab2).synced).toContainText(`LSN ${count(seeded + 4)}`);

  // Exactly one tab ever held a connection, and the server sees one client.
  expect(sockets1.open()).toBe(1);
  expect(sockets2.opened()).toBe(0);
  expect((await app.adminStatus()).connectedClients).toBe(1);

  await inFront(tab1);
  await tab1.screenshot({ path: testInfo.outputPath('two-tabs.png'), fullPage: true });
});

test('when the connected tab closes, another tab takes over', async ({ app, context }) => {
  const tab1 = await context.newPage();
  const tab2 = await context.newPage();
  const sockets2 = trackSockets(tab2);
  await tab1.goto(app.url);
  await signIn(tab1, 'alice');
  await tab2.goto(app.url);
  await expect(statusBar(tab2).holder).toHaveText('another tab');
  await expect(statusBar(tab2).connection).toHaveText('Online');
  const seeded = (await app.adminStatus()).headLsn;

  await tab1.close();
  // Written while the lock moves: it waits in the shared outbox for the new leader.
  await addNote(tab2, 'Written during the handover');
  await expect(statusBar(tab2).holder).toHaveText('this tab');
  await expect(statusBar(tab2).connection).toHaveText('Online');
  await expect.poll(async () => (await app.adminStatus()).headLsn).toBe(seeded + 1);
  await expect(statusBar(tab2).pending).toHaveText('0');
  expect(sockets2.open()).toBe(1);
  expect((await app.adminStatus()).connectedClients).toBe(1);
});

test('two users in two browsers see each other and rejections', async ({ app, browser }) => {
  const alice = await openAs(browser, app, 'alice');
  const bob = await openAs(browser, app, 'bob');
  await expect.poll(async () => (await app.adminStatus()).connectedClients).toBe(2);

  await addNote(alice, 'Alice was here');
  await expect(note(bob, 'Alice was here')).toBeVisible();
  await addNote(bob, 'Bob too');
  await expect(note(alice, 'Bob too')).toBeVisible();

  // Bob edits Alice's note offline while she deletes it: his edit is rejected, and he sees why.
  await inFront(bob);
  await bob.context().setOffline(true);
  await expect(statusBar(bob).connection).toHaveText('Offline');
  await expect.poll(async () => (await app.adminStatus()).connectedClients).toBe(1);
  await note(bob, 'Alice was here').getByRole('button', { name: 'Edit' }).click();
  await bob.getByRole('textbox', { name: 'Note text' }).fill('Bob edited this offline');
  await bob.getByRole('button', { name: 'Save' }).click();
  await expect(note(bob, 'Bob edited this offline')).toBeVisible();
  await expect(statusBar(bob).pending).toHaveText('1');

  await inFront(alice);
  await note(alice, 'Alice was here').getByRole('button', { name: 'Delete' }).click();
  await expect(statusBar(alice).pending).toHaveText('0');

  await inFront(bob);
  await bob.context().setOffline(false);
  await expect(statusBar(bob).connection).toHaveText('Online', { timeout: 30_000 });
  await expect(bob.getByRole('alert')).toContainText('does not exist');
  await expect(note(bob, 'Bob edited this offline')).toHaveCount(0);
  await expect(statusBar(bob).pending).toHaveText('0');
  await bob.getByText('1 rejected').click();
  await expect(bob.getByRole('list', { name: 'Rejected changes' })).toContainText('NOT_FOUND');
});

test('the catalog preview reads seeded products from the local replica', async ({ app, page }, testInfo) => {
  const names = demoProducts(2000)
    .map((p) => p['name'])
    .filter((n) => typeof n === 'string');
  // IndexedDB orders strings by UTF-16 code units, as Array#sort does.
  const first20 = [...names].sort().slice(0, 20);
  const sockets = trackSockets(page);
  await page.goto(app.url);
  await signIn(page, 'carol');

  const firstColumn = page.getByRole('table', { name: 'Products' }).locator('tbody tr td:first-child');
  await expect(page.getByText(`${count(2000)} products in this browser's replica`)).toBeVisible();
  await expect(firstColumn).toHaveText(first20);

  // Offline, a search still answers: it runs on the local `name` index.
  await page.context().setOffline(true);
  await expect(statusBar(page).connection).toHaveText('Offline');
  await expect.poll(async () => (await app.adminStatus()).connectedClients).toBe(0);
  expect(sockets.open()).toBe(0);
  await page.getByRole('searchbox', { name: 'Search products' }).fill('smart k');
  const matches = [...names].filter((n) => n.toLowerCase().startsWith('smart k')).sort();
  expect(matches.length).toBeGreaterThan(0);
  await expect(firstColumn).toHaveText(matches.slice(0, 20));

  await page.screenshot({ path: testInfo.outputPath('catalog-offline.png'), fullPage: true });
});
