import type { Page } from '@playwright/test';
import {
  addNote,
  count,
  expect,
  goTo,
  inFront,
  note,
  openAs,
  signIn,
  statusBar,
  test,
  trackSockets,
} from './support/fixtures';
import { SEEDED } from './support/seeded';

/**
 * The web app (client/app) against a real server process: two tabs of one
 * profile share one replica and one connection; two users see each other's
 * notes on the Live notes page; the catalog answers from the local replica,
 * offline too.
 */

const notesPage = async (page: Page): Promise<void> => {
  await goTo(page, 'Live notes');
  await expect(page.getByRole('heading', { name: 'Shared notes' })).toBeVisible();
};

test('two tabs of one profile: live notes, one connection', async ({ app, context }, testInfo) => {
  const tab1 = await context.newPage();
  const tab2 = await context.newPage();
  const sockets1 = trackSockets(tab1);
  const sockets2 = trackSockets(tab2);

  await tab1.goto(app.url);
  await signIn(tab1, 'alice');
  await expect(statusBar(tab1).holder).toHaveText('this tab');
  await notesPage(tab1);
  const seeded = (await app.adminStatus()).headLsn;

  // The second tab signs in from the shared session, follows the first and shows its status.
  await tab2.goto(`${app.url}/#/notes`);
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
  await tab2.goto(`${app.url}/#/notes`);
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
  const { page: alice } = await openAs(browser, app, 'alice');
  const { page: bob } = await openAs(browser, app, 'bob');
  await notesPage(alice);
  await notesPage(bob);
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

test('the catalog answers searches, filters, sorts and pages from the local replica, offline', async ({
  app,
  page,
}, testInfo) => {
  const products = SEEDED;
  // IndexedDB orders strings by UTF-16 code units, as these comparisons do; ties go by id, as in an index.
  const byName = [...products].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const sockets = trackSockets(page);
  await page.goto(app.url);
  await signIn(page, 'carol');

  const names = page.getByRole('list', { name: 'Products' }).getByRole('heading');
  const summary = page.getByText(/of 2,000 products/);
  await expect(summary).toContainText(`${count(2000)} of ${count(2000)} products`);
  await expect(names).toHaveText(byName.slice(0, 24).map((p) => p.name));
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(names).toHaveText(byName.slice(24, 48).map((p) => p.name));
  await expect(page.getByRole('navigation', { name: 'Pages' })).toContainText('25–48 of 2,000 · page 2 of 84');

  // Offline, every query still answers: they run on the replica's indexes.
  await page.context().setOffline(true);
  await expect(statusBar(page).connection).toHaveText('Offline');
  await expect.poll(async () => (await app.adminStatus()).connectedClients).toBe(0);
  expect(sockets.open()).toBe(0);

  // Each word begins a word of the name.
  await page.getByRole('searchbox', { name: 'Search products' }).fill('smart k');
  const smartK = byName.filter((p) => /^Smart K/.test(p.name));
  expect(smartK.length).toBeGreaterThan(24);
  await expect(names).toHaveText(smartK.slice(0, 24).map((p) => p.name));
  await expect(summary).toContainText(`${count(smartK.length)} of ${count(2000)} products`);

  // A category and a price range, most expensive first.
  await page.getByRole('searchbox', { name: 'Search products' }).fill('');
  await page.getByLabel('Category').selectOption('Toys');
  await page.getByLabel('Min price').fill('10');
  await page.getByLabel('Max price').fill('60');
  await page.getByLabel('Sort by').selectOption({ label: 'Price, high to low' });
  const toys = products
    .filter((p) => p.category === 'Toys' && p.price >= 10 && p.price <= 60)
    .sort((a, b) => b.price - a.price || (a.id < b.id ? 1 : -1));
  await expect(summary).toContainText(`${count(toys.length)} of ${count(2000)} products`);
  await expect(names).toHaveText(toys.slice(0, 24).map((p) => p.name));

  // A range that cannot match says so and is not applied.
  await page.getByLabel('Min price').fill('70');
  await expect(page.getByRole('alert')).toHaveText('The min price ($70.00) is above the max price ($60.00).');
  await page.screenshot({ path: testInfo.outputPath('catalog-offline.png'), fullPage: true });
});
