// Starts the system's headless Chromium through playwright-core, on loopback only, with a throwaway profile.
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { buildTestApp, type TestApp } from './app.js';
import { createTestDatabase, type TestDatabase } from './database.js';

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

export interface BrowserWorld {
  database: TestDatabase;
  subject: TestApp;
  browser: TestBrowser;
  /** http://127.0.0.1:<port> of the app, really listening, for Chromium to load. */
  origin: string;
  close(): Promise<void>;
}

/** The production app on its own database, listening on loopback, and a Chromium to drive it. */
export async function startBrowserWorld(): Promise<BrowserWorld> {
  const database = await createTestDatabase();
  const subject = await buildTestApp(database.handle, database.url);
  const origin = await subject.app.listen({ host: '127.0.0.1', port: 0 });
  const browser = await launchBrowser();
  return {
    database,
    subject,
    browser,
    origin,
    async close() {
      await browser.close();
      await subject.app.close();
      await database.drop();
    },
  };
}
