import type { Page } from '@playwright/test';
import {
  expect,
  goTo,
  inFront,
  negativeStockInReplica,
  networkSwitch,
  openAs,
  openProduct,
  orders,
  price,
  productCard,
  replicaDoc,
  signIn,
  statusBar,
  test,
  trackSockets,
} from './support/fixtures';
import { seededProduct as productWith } from './support/seeded';

/**
 * The storefront (client/app) end to end, in Chromium, against a real server
 * process seeded with the 2,000 demo products: live catalog updates, offline
 * shopping with a service-worker shell, the last unit sold twice, tabs
 * handing over the connection, a server restart, and bad input.
 */

/** The Staff page's editor for `name`, opened from the inventory search. */
async function staffEdit(page: Page, name: string): Promise<void> {
  await goTo(page, 'Staff');
  await page.getByRole('searchbox', { name: 'Search inventory' }).fill(name);
  await page.getByRole('button', { name: `Edit ${name}`, exact: true }).click();
  await expect(page.getByRole('heading', { name: `Edit ${name}`, exact: true })).toBeVisible();
}

/** Marks the page so a later check can tell it was never reloaded. */
const mark = (page: Page): Promise<void> =>
  page.evaluate(() => {
    (window as unknown as { e2eMark?: boolean }).e2eMark = true;
  });
const marked = (page: Page): Promise<boolean> =>
  page.evaluate(() => (window as unknown as { e2eMark?: boolean }).e2eMark === true);

test('a staff price change shows up live for two shoppers in other browsers', async ({ app, browser }, testInfo) => {
  const product = productWith((p) => p.stock > 0);
  const newPrice = 12.34;
  const staff = await openAs(browser, app, 'staff');
  const ann = await openAs(browser, app, 'ann');
  const ben = await openAs(browser, app, 'ben');

  await expect(ann.page.getByRole('list', { name: 'Products' }).getByRole('listitem')).toHaveCount(24);
  await ann.page.screenshot({ path: testInfo.outputPath('catalog.png') });

  // Ann watches the product's card in the catalog, Ben its page.
  await inFront(ann.page);
  await ann.page.getByRole('searchbox', { name: 'Search products' }).fill(product.name);
  await expect(productCard(ann.page, product.name).getByTestId('price')).toHaveText(price(product.price));
  await openProduct(ben.page, product.name);
  await expect(ben.page.getByTestId('price')).toHaveText(price(product.price));
  await mark(ann.page);
  await mark(ben.page);

  await staffEdit(staff.page, product.name);
  await staff.page.getByLabel('Price', { exact: true }).fill(String(newPrice));
  await staff.page.getByRole('button', { name: 'Save changes' }).click();
  await expect(staff.page.getByRole('status').filter({ hasText: 'Saved price' })).toBeVisible();

  await expect(productCard(ann.page, product.name).getByTestId('price')).toHaveText(price(newPrice));
  await expect(ben.page.getByTestId('price')).toHaveText(price(newPrice));
  expect(await marked(ann.page)).toBe(true);
  expect(await marked(ben.page)).toBe(true);
  expect((await app.product(product.id))?.['price']).toBe(newPrice);
  await expect(staff.page.getByRole('table', { name: 'Inventory' })).toContainText(price(newPrice));
  // The same catalog on a phone-sized screen.
  await ann.page.setViewportSize({ width: 390, height: 844 });
  await ann.page.getByRole('searchbox', { name: 'Search products' }).fill('');
  await ann.page.screenshot({ path: testInfo.outputPath('catalog-phone.png') });
  await inFront(staff.page);
  await staff.page.screenshot({ path: testInfo.outputPath('staff-edit.png'), fullPage: true });
});

test('offline: shop, check out and reload with no network; back online the order commits once', async ({
  app,
  browser,
}, testInfo) => {
  const product = productWith((p) => p.stock >= 5);
  const staff = await openAs(browser, app, 'staff');
  await goTo(staff.page, 'Staff');
  const dave = await openAs(browser, app, 'dave');
  // The app shell is cached once the service worker is active.
  await expect(statusBar(dave.page).offlineUse).toHaveText('ready');
  await expect.poll(async () => (await app.adminStatus()).connectedClients).toBe(2);
  const failedInWorker: string[] = [];
  dave.context.on('requestfailed', (r) => {
    if (r.serviceWorker()) failedInWorker.push(new URL(r.url()).pathname);
  });

  await dave.net.goOffline();
  await expect(statusBar(dave.page).connection).toHaveText('Offline');
  // The connection is really down: the server lost this client.
  await expect.poll(async () => (await app.adminStatus()).connectedClients).toBe(1);

  await openProduct(dave.page, product.name);
  await dave.page.getByLabel('Quantity').fill('2');
  await dave.page.getByRole('button', { name: 'Add to cart' }).click();
  await expect(dave.page.getByRole('status').filter({ hasText: `Added 2 × ${product.name}` })).toBeVisible();
  await goTo(dave.page, 'Cart');
  await expect(dave.page.getByRole('list', { name: 'Cart' }).getByRole('listitem')).toHaveCount(1);
  await expect(dave.page.getByTestId('cart-total')).toHaveText(price(product.price * 2));
  await dave.page.screenshot({ path: testInfo.outputPath('cart.png') });
  await dave.page.getByRole('button', { name: 'Place order' }).click();
  await expect(orders(dave.page)).toHaveCount(1);
  await expect(orders(dave.page).first()).toContainText('Pending on this device');
  await expect(statusBar(dave.page).pending).toHaveText('2');

  // A reload with no network: the service worker serves the shell, IndexedDB the data.
  const reloaded = await dave.page.reload();
  expect(reloaded?.fromServiceWorker()).toBe(true);
  await expect.poll(() => failedInWorker).toContain('/');
  await expect(statusBar(dave.page).connection).toHaveText('Offline');
  await expect(orders(dave.page).first()).toContainText('Pending on this device');
  await expect(orders(dave.page).first()).toContainText(`2 × ${product.name}`);
  await expect(statusBar(dave.page).pending).toHaveText('2');
  await dave.page.screenshot({ path: testInfo.outputPath('offline-reload.png') });
  expect((await app.product(product.id))?.['stock']).toBe(product.stock);
  expect(await app.query('orders', ['owner:eq:dave'], 'staff')).toHaveLength(0);

  await dave.net.goOnline();
  await expect(statusBar(dave.page).connection).toHaveText('Online', { timeout: 30_000 });
  await expect(statusBar(dave.page).pending).toHaveText('0');
  await expect(orders(dave.page).first()).toContainText('Confirmed');
  // Once: one order, and the stock went down by 2, once.
  const placed = await app.query('orders', ['owner:eq:dave'], 'staff');
  expect(placed).toEqual([
    expect.objectContaining({
      owner: 'dave',
      status: 'confirmed',
      lines: [expect.objectContaining({ productId: product.id, qty: 2 })],
    }),
  ]);
  expect((await app.product(product.id))?.['stock']).toBe(product.stock - 2);
  expect((await replicaDoc(dave.page, 'dave', 'products', product.id))?.['stock']).toBe(product.stock - 2);
  await expect(dave.page.getByRole('link', { name: /^Cart/ })).toHaveAccessibleName('Cart 0 items');
  // Staff see it live.
  const allOrders = staff.page
    .getByRole('list', { name: 'All orders' })
    .getByRole('listitem')
    .filter({ has: staff.page.getByRole('heading') });
  await expect(allOrders.filter({ hasText: 'by dave' })).toHaveCount(1);
  await expect(allOrders.filter({ hasText: 'by dave' })).toContainText(`2 × ${product.name}`);
  await inFront(staff.page);
  await staff.page.screenshot({ path: testInfo.outputPath('staff-view.png'), fullPage: true });
});

test('two shoppers buy the last unit at the same moment: one order, one clear rejection', async ({
  app,
  browser,
}, testInfo) => {
  const product = productWith((p) => p.stock === 1);
  const shoppers = [
    { user: 'eve', ...(await openAs(browser, app, 'eve')) },
    { user: 'fay', ...(await openAs(browser, app, 'fay')) },
  ];
  for (const { page } of shoppers) {
    await openProduct(page, product.name);
    await page.getByRole('button', { name: 'Add to cart' }).click();
    await goTo(page, 'Cart');
    await expect(page.getByRole('list', { name: 'Cart' })).toContainText(product.name);
    await expect(statusBar(page).pending).toHaveText('0');
  }

  // Both checkouts leave the browsers before either hears of the other, and reach the server together.
  for (const { net } of shoppers) net.holdPushes();
  for (const { page } of shoppers) {
    await inFront(page);
    await page.getByRole('button', { name: 'Place order' }).click();
    await expect(orders(page).first()).toContainText('Pending on this device');
  }
  await expect.poll(() => shoppers.map((s) => s.net.heldPushes())).toEqual([1, 1]);
  for (const { net } of shoppers) net.releasePushes();

  await expect.poll(async () => (await app.query('orders', [], 'staff')).length).toBe(1);
  const [winner, loser] =
    (await app.query('orders', [], 'staff'))[0]?.['owner'] === shoppers[0]?.user ? shoppers : [...shoppers].reverse();
  if (!winner || !loser) throw new Error('two shoppers expected');
  await inFront(loser.page);
  await expect(orders(winner.page).first()).toContainText('Confirmed');
  const alert = loser.page.getByRole('alert').filter({ hasText: 'Your order could not be placed' });
  await expect(alert).toContainText(`${product.name}: only 0 left, 1 wanted`);
  await expect(orders(loser.page).first()).toContainText('Rejected');
  await expect(orders(loser.page).first()).toContainText('only 0 left');
  // The rejected checkout rolled back: the cart is back, and the stock shows 0.
  await expect(loser.page.getByRole('link', { name: /^Cart/ })).toHaveAccessibleName('Cart 1 item');
  await loser.page.screenshot({ path: testInfo.outputPath('checkout-rejected.png') });

  expect((await app.product(product.id))?.['stock']).toBe(0);
  expect(await app.query('products', ['stock:lt:0'])).toHaveLength(0);
  for (const { user, page } of shoppers) {
    await expect.poll(async () => (await replicaDoc(page, user, 'products', product.id))?.['stock']).toBe(0);
    expect(await negativeStockInReplica(page, user)).toBe(0);
    await expect(statusBar(page).pending).toHaveText('0');
  }
  await goTo(loser.page, 'Cart');
  await expect(loser.page.getByRole('list', { name: 'Stock problems' })).toContainText(
    `${product.name}: only 0 left, 1 in your cart.`,
  );
});

test('two tabs of one shopper: one connection, both live; the leader closes with a change pending', async ({
  app,
  browser,
}) => {
  const [first, second] = [productWith((p) => p.stock >= 2), productWith((p) => p.stock >= 2, 1)];
  const context = await browser.newContext();
  const net = await networkSwitch(context);
  const tab1 = await context.newPage();
  const tab2 = await context.newPage();
  const sockets2 = trackSockets(tab2);
  await tab1.goto(app.url);
  await signIn(tab1, 'gus');
  await expect(statusBar(tab1).holder).toHaveText('this tab');
  await tab2.goto(app.url);
  await expect(statusBar(tab2).holder).toHaveText('another tab');
  await expect(statusBar(tab2).connection).toHaveText('Online');
  expect((await app.adminStatus()).connectedClients).toBe(1);

  // The follower writes; the leader pushes; both show it.
  await openProduct(tab2, first.name);
  await tab2.getByRole('button', { name: 'Add to cart' }).click();
  await expect(tab1.getByRole('link', { name: /^Cart/ })).toHaveAccessibleName('Cart 1 item');
  await expect.poll(async () => JSON.stringify(await app.query('carts', [], 'gus'))).toContain(first.id);

  // No network: a change made in the leader waits in the shared outbox when the leader closes.
  await net.goOffline();
  await expect(statusBar(tab1).connection).toHaveText('Offline');
  await expect.poll(async () => (await app.adminStatus()).connectedClients).toBe(0);
  await openProduct(tab1, second.name);
  await tab1.getByRole('button', { name: 'Add to cart' }).click();
  await expect(statusBar(tab1).pending).toHaveText('1');
  await expect(statusBar(tab2).pending).toHaveText('1');
  await expect(tab2.getByRole('link', { name: /^Cart/ })).toHaveAccessibleName('Cart 2 items');
  expect(sockets2.opened()).toBe(0);
  await tab1.close();

  await expect(statusBar(tab2).holder).toHaveText('this tab');
  await net.goOnline();
  await expect(statusBar(tab2).connection).toHaveText('Online', { timeout: 30_000 });
  await expect(statusBar(tab2).pending).toHaveText('0');
  await expect.poll(async () => JSON.stringify(await app.query('carts', [], 'gus'))).toContain(second.id);
  expect((await app.adminStatus()).connectedClients).toBe(1);
  expect(sockets2.opened()).toBeGreaterThan(0);
});

test('the server restarts mid-session: pages reconnect by themselves and converge', async ({ app, browser }) => {
  const product = productWith((p) => p.stock >= 3, 2);
  const staff = await openAs(browser, app, 'staff');
  const hal = await openAs(browser, app, 'hal');
  await openProduct(staff.page, product.name);
  await openProduct(hal.page, product.name);
  await mark(staff.page);
  await mark(hal.page);

  await app.halt();
  await expect(statusBar(hal.page).connection).not.toHaveText('Online');
  await expect(statusBar(staff.page).connection).not.toHaveText('Online');
  // Both keep working while the server is down.
  await inFront(hal.page);
  await hal.page.getByRole('button', { name: 'Add to cart' }).click();
  await expect(statusBar(hal.page).pending).toHaveText('1');
  await inFront(staff.page);
  await staff.page.getByLabel('Price', { exact: true }).fill('3.21');
  await staff.page.getByRole('button', { name: 'Save changes' }).click();
  await expect(statusBar(staff.page).pending).toHaveText('1');

  await app.resume();
  for (const { page } of [staff, hal]) {
    await expect(statusBar(page).connection).toHaveText('Online', { timeout: 30_000 });
    await expect(statusBar(page).pending).toHaveText('0');
  }
  await expect(hal.page.getByTestId('price')).toHaveText(price(3.21));
  expect((await app.product(product.id))?.['price']).toBe(3.21);
  expect(JSON.stringify(await app.query('carts', [], 'hal'))).toContain(product.id);
  expect((await replicaDoc(staff.page, 'staff', 'products', product.id))?.['price']).toBe(3.21);
  expect(JSON.stringify(await replicaDoc(hal.page, 'hal', 'carts', 'hal/cart'))).toContain(product.id);
  for (const { page } of [staff, hal]) expect(await marked(page)).toBe(true);
});

test('bad input gets a clear message and changes nothing', async ({ app, browser }) => {
  const product = productWith((p) => p.stock >= 2 && p.stock < 60, 3);
  const ivy = await openAs(browser, app, 'ivy');
  const staff = await openAs(browser, app, 'staff');

  // A shopper's quantities.
  await openProduct(ivy.page, product.name);
  const qty = ivy.page.getByLabel('Quantity');
  const add = ivy.page.getByRole('button', { name: 'Add to cart' });
  const cases: Array<[string, string]> = [
    ['', 'Enter a quantity'],
    ['0', 'A quantity is at least 1.'],
    ['-3', 'A quantity is at least 1.'],
    ['2.5', 'A quantity is a whole number from 1 to 99, not 2.5.'],
    ['abc', '“abc” is not a number'],
    ['1e9', '“1e9” is not a number'],
    ['100', 'At most 99 of one product'],
    ['60', `only ${product.stock} in stock`],
  ];
  for (const [input, message] of cases) {
    await qty.fill(input);
    await add.click();
    await expect(ivy.page.getByRole('alert')).toContainText(message);
    await expect(ivy.page.getByRole('alert')).toContainText('Nothing added');
  }
  await expect(ivy.page.getByRole('link', { name: /^Cart/ })).toHaveAccessibleName('Cart 0 items');
  await expect(statusBar(ivy.page).pending).toHaveText('0');

  await qty.fill('1');
  await add.click();
  await expect(ivy.page.getByRole('status').filter({ hasText: 'Added 1 ×' })).toBeVisible();
  await goTo(ivy.page, 'Cart');
  const line = ivy.page.getByRole('list', { name: 'Cart' }).getByRole('listitem', { name: product.name });
  for (const input of ['', '0', '-1', '100', 'lots', '1.5']) {
    await line.getByLabel('Quantity').fill(input);
    await line.getByRole('button', { name: 'Update' }).click();
    await expect(ivy.page.getByRole('alert')).toContainText('Quantity not changed.');
  }
  await expect(statusBar(ivy.page).pending).toHaveText('0');
  await expect.poll(async () => JSON.stringify(await app.query('carts', [], 'ivy'))).toContain('"qty":1');

  // Staff: prices, stock, names, restocks.
  await openProduct(staff.page, product.name);
  const field = (label: string) => staff.page.getByLabel(label, { exact: true });
  const save = staff.page.getByRole('button', { name: 'Save changes' });
  const staffCases: Array<[string, string, string]> = [
    ['Price', '-1', 'A price cannot be negative.'],
    ['Price', '', 'Enter a price'],
    ['Price', 'free', 'A price is a number, like 12.50; “free” is not.'],
    ['Price', '1.999', 'A price has at most two decimals (cents).'],
    ['Stock', '-3', 'Stock cannot be negative.'],
    ['Stock', '2.5', 'Stock is a whole number'],
    ['Name', '   ', 'A product needs a name.'],
  ];
  for (const [label, input, message] of staffCases) {
    await field(label).fill(input);
    await save.click();
    await expect(staff.page.getByRole('alert')).toContainText(`Not saved. ${message}`);
    await staff.page.getByRole('button', { name: 'Reset' }).click();
  }
  for (const [input, message] of [
    ['0', 'at least 1'],
    ['-5', 'at least 1'],
    ['lots', 'not a number'],
    ['99999', 'at most 10,000'],
  ]) {
    await field('Restock amount').fill(input ?? '');
    await staff.page.getByRole('button', { name: 'Restock' }).click();
    await expect(staff.page.getByRole('alert')).toContainText('Not restocked. ');
    await expect(staff.page.getByRole('alert')).toContainText(message ?? '');
  }
  await expect(statusBar(staff.page).pending).toHaveText('0');
  await expect(staff.page.getByText(/^\d+ rejected$/)).toHaveCount(0);
  const stored = await app.product(product.id);
  expect(stored).toMatchObject({ name: product.name, price: product.price, stock: product.stock });
});
