// The download page in Chromium with the backup host's clock 90 s ahead or behind: it counts the link's 60 s (issue 14, item 7).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_BUNDLE } from '../dispatcher/world.js';
import { launchBrowser, type TestBrowser } from '../harness/browser.js';
import { createUser, PASSWORD } from '../harness/users.js';
import {
  askForArchive,
  makeSnapshot,
  pollUntil,
  sendLinks,
  signedIn,
  startArchiveWorld,
  downloadLinkIn,
  type ArchiveWorld,
} from '../archives/archive-world.js';

let world: ArchiveWorld;
let browser: TestBrowser;
let origin: string;
let seamDir: string;

/** Moves the backup host's clock: the test build of the dispatcher reads this offset on every call. */
function setHostClockOffset(seconds: number): void {
  writeFileSync(join(seamDir, 'host-clock-offset'), String(seconds));
}

beforeAll(async () => {
  seamDir = mkdtempSync(join(tmpdir(), 'archway-skew-'));
  const program = join(seamDir, 'skewed-dispatcher.mjs');
  // The real dispatcher (its test build), with ARCHWAY_DISPATCHER_NOW_OFFSET set from a file before it starts.
  writeFileSync(
    program,
    `import { readFileSync } from 'node:fs';
process.env.ARCHWAY_DISPATCHER_NOW_OFFSET = readFileSync(new URL('./host-clock-offset', import.meta.url), 'utf8').trim();
await import(${JSON.stringify(pathToFileURL(TEST_BUNDLE).href)});
`,
  );
  setHostClockOffset(0);
  world = await startArchiveWorld({ localDispatcherPath: program });
  origin = await world.app.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await world?.close();
  if (seamDir) rmSync(seamDir, { recursive: true, force: true });
});

/** The portal's times, to the second, from `from` to `to` as the page writes them ("HH:MM:SS UTC"). */
function utcSecondsBetween(from: number, to: number): string[] {
  const out: string[] = [];
  for (let t = Math.floor(from / 1000); t <= Math.ceil(to / 1000); t++) out.push(`${new Date(t * 1000).toISOString().slice(11, 19)} UTC`);
  return out;
}

/** A customer whose archive is ready, opening the emailed link in Chromium and signing in on the way. */
async function openDownloadPage(javaScriptEnabled: boolean) {
  const user = await createUser(world.app);
  makeSnapshot(world, user.domain!, 'daily.0', 1);
  const id = await askForArchive(await signedIn(world, user), 'daily.0');
  await pollUntil(world, id, ['ready']);
  const [mail] = await sendLinks(world);
  const link = downloadLinkIn(mail!);
  const context = await browser.newContext({ javaScriptEnabled });
  const page = await context.newPage();
  await page.goto(`${origin}${link.path}`);
  expect(new URL(page.url()).pathname).toBe('/sign-in');
  await page.getByLabel('Email address').fill(user.email);
  await page.getByLabel('Password').fill(PASSWORD);
  const before = world.clock.now().getTime();
  await page.getByRole('button', { name: 'Sign in' }).click();
  expect(new URL(page.url()).pathname).toBe(`/downloads/${id}`);
  const after = world.clock.now().getTime();
  return { page, context, before, after };
}

describe.each([
  ['90 s ahead', 90],
  ['90 s behind', -90],
])('the download page with the backup host clock %s', (_label, offset) => {
  it('says, without JavaScript, that the link works for 60 seconds, until a minute from now', async () => {
    setHostClockOffset(offset);
    const { page, context, before, after } = await openDownloadPage(false);
    try {
      expect(await page.locator('h1').textContent()).toBe('Your download is ready');
      // The proof the host's clock is moved: the signed expiry is 60 s after the host's now, not ours.
      const href = (await page.locator('#download-link').getAttribute('href')) ?? '';
      const expires = Number(new URL(href).searchParams.get('expires'));
      expect(Math.abs(expires - (Date.now() / 1000 + offset + 60))).toBeLessThan(10);
      const seconds = Number(await page.locator('#link-countdown').getAttribute('data-seconds'));
      expect(seconds).toBeGreaterThanOrEqual(55);
      expect(seconds).toBeLessThanOrEqual(60);
      const text = (await page.locator('main p').nth(1).textContent()) ?? '';
      const until = /^This link works for 60 seconds, until (\d\d:\d\d:\d\d UTC), and only from your address 127\.0\.0\.1\./.exec(
        text,
      )?.[1];
      expect(utcSecondsBetween(before + 55_000, after + 60_000)).toContain(until);
    } finally {
      await context.close();
    }
  });

  it('counts down from about 60 seconds with JavaScript on', async () => {
    setHostClockOffset(offset);
    const { page, context } = await openDownloadPage(true);
    try {
      const countdown = page.locator('#link-countdown');
      await expect.poll(async () => countdown.textContent(), { timeout: 20_000 }).toMatch(/^The link works for \d+ more seconds?\.$/);
      const left = Number(/(\d+) more/.exec((await countdown.textContent()) ?? '')?.[1]);
      expect(left).toBeGreaterThanOrEqual(50);
      expect(left).toBeLessThanOrEqual(60);
      expect(await page.locator('#download-link').getAttribute('href')).toMatch(/^https:\/\/dl\.example\.net\/dl\//);
    } finally {
      await context.close();
    }
  });
});
