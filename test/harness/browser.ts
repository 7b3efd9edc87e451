// Starts the system's headless Chromium through playwright-core, on loopback only, with a throwaway profile.
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

const CHROMIUM = process.env.ARCHWAY_TEST_CHROMIUM ?? '/usr/bin/chromium';

export interface TestBrowser {
  browser: Browser;
  /** A fresh context (own cookies); JavaScript is off unless asked for, as every page must work without it. */
  newContext(options?: { javaScriptEnabled?: boolean }): Promise<BrowserContext>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    // playwright gives each launch a fresh temporary profile (user-data-dir) and deletes it on close.
  });
  return {
    browser,
    newContext: (options = {}) => browser.newContext({ javaScriptEnabled: options.javaScriptEnabled ?? false }),
    async close() {
      await browser.close();
    },
  };
}
