import { expect, goTo, inFront, openProduct, signIn, statusBar, test } from './support/fixtures';
import { seededProduct } from './support/seeded';

/**
 * The storefront runs under the node's Content-Security-Policy: nothing it
 * loads or does is blocked (no `securitypolicyviolation` event and no CSP
 * console error on any page), and it still goes live over its socket.
 */
test('the storefront runs under the Content-Security-Policy with nothing blocked', async ({ app, browser }) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    const text = msg.text();
    // No exception: the app sets z.config({ jitless: true }) first (client/app/zod-jitless.ts), so zod never
    // probes `new Function` and the policy refuses nothing, eval included.
    if (/Content Security Policy|Refused to/i.test(text)) problems.push(text);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`Refused to: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const res = await page.goto(app.url);
  expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
  await signIn(page, 'staff'); // staff: every page, the Staff one too
  const product = seededProduct((p) => p.stock > 0);
  await openProduct(page, product.name);
  for (const where of ['Cart', 'Orders', 'Staff', 'Live notes', 'Catalog'] as const) await goTo(page, where);
  await inFront(page);
  await expect(statusBar(page).connection).toHaveText('Online');
  // The service worker (worker-src falls back to script-src 'self') registered and controls the page after a reload.
  await page.reload();
  await expect(statusBar(page).connection).toHaveText('Online', { timeout: 40_000 });
  expect(problems).toEqual([]);
  await context.close();
});
