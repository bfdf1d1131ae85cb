import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from '@playwright/test';
import type { BrowserContext, Page } from '@playwright/test';
import type { BenchApi } from './api';

/** The flags playwright.config.ts gives Debian's Chromium (see /work/shared/TOOLCHAIN.md). */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

type Method = keyof BenchApi;
type Result<K extends Method> = Awaited<ReturnType<BenchApi[K]>>;

/** One bench page in a Chromium of its own, with its own on-disk profile (so its own IndexedDB). */
export class BenchPage {
  private constructor(
    readonly name: string,
    private readonly context: BrowserContext,
    private readonly page: Page,
    private readonly profileDir: string,
  ) {}

  static async launch(name: string, url: string): Promise<BenchPage> {
    const profileDir = mkdtempSync(join(tmpdir(), `tideline-bench-${name}-`));
    const context = await chromium.launchPersistentContext(profileDir, {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      page.on('pageerror', (err) => console.error(`bench page ${name}: ${err.message}`));
      await page.goto(`${url}/`);
      await page.waitForFunction(() => 'bench' in window, undefined, { timeout: 30_000 });
      return new BenchPage(name, context, page, profileDir);
    } catch (err) {
      await context.close();
      rmSync(profileDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Calls `window.bench[method](...args)` in the page. */
  call<K extends Method>(method: K, ...args: Parameters<BenchApi[K]>): Promise<Result<K>> {
    return this.page.evaluate(([m, a]) => (window.bench[m] as (...xs: unknown[]) => unknown)(...a), [method, args] as [
      Method,
      unknown[],
    ]) as Promise<Result<K>>;
  }

  /**
   * Runs `fn` under the V8 CPU profiler of this page's renderer and writes the
   * profile to `file` (`--cpu-prof`; summarise with `npx tsx bench/profile-top.ts`).
   * IndexedDB itself runs in the browser process, so its time shows as idle here.
   */
  async profiled<T>(file: string, fn: () => Promise<T>): Promise<T> {
    const cdp = await this.context.newCDPSession(this.page);
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 250 });
    await cdp.send('Profiler.start');
    try {
      return await fn();
    } finally {
      const { profile } = await cdp.send('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      await cdp.detach();
    }
  }

  userAgent(): Promise<string> {
    return this.page.evaluate(() => navigator.userAgent);
  }

  async close(): Promise<void> {
    await this.context.close();
    rmSync(this.profileDir, { recursive: true, force: true });
  }
}
