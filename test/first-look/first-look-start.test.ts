// `npm start` alone, as a newcomer runs it: Chromium signs in as the demo customer, asks for an archive, follows the mailed link and downloads it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../harness/eventually.js';
import { launchBrowser, type TestBrowser } from '../harness/browser.js';
import { freeLoopbackPort } from '../harness/sshd.js';
import {
  filesUnder,
  processesMentioning,
  removeScratch,
  scratchClone,
  startFirstLook,
  treeDigest,
  type FirstLookServer,
} from './first-look-world.js';

let clone: string;
let dataDir: string;
let browser: TestBrowser;
const outputs: string[] = [];

beforeAll(() => {
  clone = scratchClone();
  dataDir = path.join(clone, 'var');
});

afterAll(async () => {
  await browser?.close();
  // Whatever a failed test left running goes with the scratch copy.
  for (const { pid } of processesMentioning(clone)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (clone) removeScratch(clone);
});

function demoCustomerPassword(): string {
  const line = readFileSync(path.join(dataDir, 'first-look-accounts.txt'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('customer demo-customer@example.net '));
  return line!.split(' ')[2]!;
}

/** Opens the newest message with this subject from the banner's Mailbox link, reloading until it has arrived. */
async function openMailboxMessage(page: Page, subject: string, about: string): Promise<void> {
  // An earlier archive's message can have the same subject: open the newest one that is about this one.
  await eventually(
    `the "${subject}" email about ${about} in the Mailbox`,
    async () => {
      await Promise.all([page.waitForNavigation(), page.click('#mailbox-link')]);
      const hrefs = await page
        .locator('#mailbox a', { hasText: subject })
        .evaluateAll((links) => links.map((a) => a.getAttribute('href')!));
      for (const href of hrefs) {
        await page.goto(new URL(href, page.url()).href);
        if (((await page.textContent('#mail-text')) ?? '').includes(about)) return true;
      }
      return undefined;
    },
    { timeoutMs: 60_000 },
  );
}

/** The archive page's state, looked at twice a second at most (a page load is not free on a busy machine). */
async function stateOf(context: BrowserContext, url: string): Promise<string> {
  await new Promise((r) => setTimeout(r, 500));
  const page = await context.newPage();
  await page.goto(url);
  const state = (await page.textContent('#archive-state')) ?? '';
  await page.close();
  return state;
}

/** The whole flow in one browser; returns what the tests check afterwards. */
async function downloadAnArchive(
  server: FirstLookServer,
  options: { javaScriptEnabled: boolean; snapshotIndex: number; cooldown: boolean },
) {
  const context = await browser.newContext({ javaScriptEnabled: options.javaScriptEnabled });
  const page = await context.newPage();
  await page.goto(`${server.url}/sign-in`);
  await page.fill('#email', 'demo-customer@example.net');
  await page.fill('#password', demoCustomerPassword());
  await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign in")')]);

  // The generated demo backups: three dated snapshots, the latest chosen.
  await page.goto(`${server.url}/backups`);
  const snapshots = await page.$$eval('input[name="snapshot"]', (inputs) => inputs.map((i) => i.getAttribute('value') ?? ''));
  expect(snapshots).toHaveLength(3);
  for (const name of snapshots) expect(name).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  expect([...snapshots].sort().reverse()).toEqual(snapshots);
  await page.check(`input[name="snapshot"][value="${snapshots[options.snapshotIndex]}"]`);
  await Promise.all([page.waitForNavigation(), page.click('button:has-text("Ask for an archive")')]);
  const requestId = /\/archives\/([0-9a-f-]{36})$/.exec(page.url())?.[1];
  expect(requestId).toBeDefined();
  const archiveUrl = `${server.url}/archives/${requestId}`;
  if (options.javaScriptEnabled) await expectLiveProgress(page);

  // The real dispatcher builds it; the portal's poller sees it ready.
  await eventually(
    'the archive to be ready',
    async () => {
      const state = await stateOf(context, archiveUrl);
      if (state === 'failed') throw new Error(`the build failed:\n${server.output()}`);
      return state === 'ready to download' ? true : undefined;
    },
    { timeoutMs: 120_000 },
  );
  await page.goto(archiveUrl);
  const sha256 = (await page.textContent('#archive-sha256'))!;
  expect(sha256).toMatch(/^[0-9a-f]{64}$/);

  // The emailed link, followed from the Mailbox the banner links to, then the download page's 60-second link.
  await openMailboxMessage(page, 'Your Archway archive is ready', `/downloads/${requestId}?t=`);
  const mailLink = page.locator(`#mail-text a[href*="/downloads/${requestId}?t="]`);
  const link = (await mailLink.getAttribute('href'))!;
  expect(link).toMatch(new RegExp(`^${server.url}/downloads/${requestId}\\?t=[A-Za-z0-9_-]{43}$`));
  const token = new URL(link).searchParams.get('t')!;
  await Promise.all([page.waitForNavigation(), mailLink.click()]);
  expect(page.url()).toBe(`${server.url}/downloads/${requestId}`);
  const ip = /only from your address ([0-9a-f.:]+[0-9a-f])/.exec((await page.textContent('main')) ?? '')?.[1];
  expect(ip).toMatch(/^(127\.0\.0\.1|::1)$/);
  if (options.javaScriptEnabled) await expectCountdown(page);
  const href = (await page.getAttribute('#download-link', 'href'))!;
  const downloadBaseUrl = JSON.parse(readFileSync(path.join(dataDir, 'backup-host', 'dispatcher.json'), 'utf8')).downloadBaseUrl as string;
  expect(href.startsWith(`${downloadBaseUrl}/dl/`)).toBe(true);
  expect(downloadBaseUrl).not.toBe(server.url);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-link')]);
  const file = (await download.path())!;
  const bytes = readFileSync(file);
  expect(createHash('sha256').update(bytes).digest('hex')).toBe(sha256);
  const listing = spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
  expect(listing.status).toBe(0);
  expect(listing.stdout.split('\n')).toEqual(
    expect.arrayContaining(['./postgresql/mastodon_production.sql', './mastodon/live/.env.production']),
  );
  expect(listing.stdout).toMatch(/\.\/mastodon\/live\/public\/system\/media_attachments\/files\/(\d{3}\/){6}original\/[0-9a-f]{16}\.jpg/);

  // watch read the download server's log line; the portal copied the event: the page says downloaded, when and from where.
  await eventually(
    'the archive page to say downloaded',
    async () => ((await stateOf(context, archiveUrl)) === 'downloaded' ? true : undefined),
    { timeoutMs: 60_000 },
  );
  await page.goto(archiveUrl);
  expect(await page.textContent('#downloaded-ip')).toBe(ip);
  expect(await page.textContent('#downloaded-at')).toMatch(/\d/);
  expect(await page.textContent('#downloaded-bytes')).toContain(`(${bytes.length} bytes)`);

  // The receipt the event sync queued: same SHA-256 as the page, same address.
  await openMailboxMessage(page, 'Your Archway archive was downloaded', `SHA-256: ${sha256}`);
  const receipt = (await page.textContent('#mail-text'))!;
  expect(receipt).toContain(`SHA-256: ${sha256}`);
  expect(receipt).toContain(`From the address: ${ip}`);

  // A second download is refused: the download page and a fresh use of the mailed link both say so.
  for (const again of [`${server.url}/downloads/${requestId}`, link]) {
    await page.goto(again);
    expect(await page.textContent('h1')).toBe('This archive has been downloaded');
    expect(await page.locator('#download-link').count()).toBe(0);
  }

  // The first look's default cooldown: its end time and the wait, and no archive to ask for meanwhile.
  if (options.cooldown) {
    await page.goto(`${server.url}/backups`);
    expect(await page.textContent('#cooldown')).toMatch(/^You can ask for your next archive from .*\d{1,2}:\d{2}.* \(in [12] minutes?\)\./);
    expect(await page.locator('input[name="snapshot"]').count()).toBe(0);
  }
  await context.close();
  return { requestId: requestId!, token, archiveUrl };
}

/** What the checks running in the page use of it (the tests compile without the DOM's types). */
interface Dom {
  document: { getElementById(id: string): { textContent: string | null } | null };
  stillHere?: boolean;
}

/** With JavaScript on, the archive page's script replaces the meta refresh and updates the progress in place. */
async function expectLiveProgress(page: Page): Promise<void> {
  if ((await page.locator('#archive-progress').count()) === 0) return;
  await page.waitForFunction(() =>
    (globalThis as unknown as Dom).document.getElementById('progress-note')?.textContent?.startsWith('This page updates itself'),
  );
  expect(await page.locator('meta[http-equiv="refresh"]').count()).toBe(0);
  // A mark on this document: an update seen while it is still there came without a navigation.
  const first = await page.evaluate(() => {
    (globalThis as unknown as Dom).stillHere = true;
    return (globalThis as unknown as Dom).document.getElementById('archive-written')?.textContent ?? '';
  });
  // The progress moves in place, or a build too quick for a second look ends in the script's one reload.
  await page.waitForFunction(
    (before) => {
      const w = globalThis as unknown as Dom;
      return !w.stillHere || (w.document.getElementById('archive-written')?.textContent ?? '') !== before;
    },
    first,
    { timeout: 120_000, polling: 250 },
  );
}

/** With JavaScript on, the download page counts the link's seconds down. */
async function expectCountdown(page: Page): Promise<void> {
  const secondsShown = async () =>
    Number(/The link works for (\d+) more seconds?\./.exec((await page.textContent('#link-countdown')) ?? '')?.[1]);
  const start = await secondsShown();
  expect(start).toBeGreaterThan(0);
  expect(start).toBeLessThanOrEqual(60);
  await page.waitForFunction((s) => {
    const m = /The link works for (\d+) more/.exec(
      (globalThis as unknown as Dom).document.getElementById('link-countdown')?.textContent ?? '',
    );
    return m !== null && Number(m[1]) < s;
  }, start);
}

/** The sentinel for the check after a stop: the same look at /proc finds watch while the portal runs. */
function expectDispatcherWatchRunning(): void {
  expect(processesMentioning(clone).some((p) => / watch $/.test(p.cmdline) && p.cmdline.includes('archway-dispatcher.mjs'))).toBe(true);
}

function expectNoProcessLeft(): void {
  // watch, sweep, dispatcher calls and builders carry the config path under the copy; tar names the snapshot there.
  expect(processesMentioning(clone)).toEqual([]);
}

describe('first look with an empty var/', () => {
  it(
    'npm start: the demo customer downloads an archive with JavaScript off via the Mailbox, sees the receipt, the cooldown and a second download refused; the token stays in the mail only; Ctrl-C leaves nothing running',
    { timeout: 600_000 },
    async () => {
      browser = await launchBrowser();
      const port = await freeLoopbackPort();
      const server = await startFirstLook({ cwd: clone, npm: true, env: { ARCHWAY_DATA_DIR: dataDir, ARCHWAY_PORT: String(port) } });
      outputs.push(server.output());

      // The backup host's layout and modes, as the install script makes them.
      const host = path.join(dataDir, 'backup-host');
      const mode = (p: string) => (statSync(path.join(host, p)).mode & 0o777).toString(8);
      expect({
        root: mode('.'),
        archives: mode('archives'),
        links: mode('links'),
        state: mode('state'),
        secret: mode('secure-link.secret'),
        config: mode('dispatcher.json'),
      }).toEqual({ root: '700', archives: '750', links: '750', state: '700', secret: '600', config: '600' });
      expect(existsSync(path.join(host, 'log', 'download.log'))).toBe(true);

      const first = await downloadAnArchive(server, { javaScriptEnabled: false, snapshotIndex: 0, cooldown: true });
      expectDispatcherWatchRunning();
      await server.stop('SIGINT');
      outputs.push(server.output());
      expectNoProcessLeft();

      // The token is in the delivered mail and nowhere else: not in var/, not in the server's output.
      const outbox = path.join(dataDir, 'outbox');
      const hexToken = Buffer.from(first.token).toString('hex');
      expect(readdirSync(outbox).some((n) => readFileSync(path.join(outbox, n), 'utf8').includes(first.token.slice(0, 20)))).toBe(true);
      for (const file of filesUnder(dataDir, outbox)) {
        const content = readFileSync(file);
        expect(content.includes(first.token), file).toBe(false);
        expect(content.includes(hexToken), file).toBe(false);
      }
      expect(server.output()).not.toContain(first.token);
      writeFileSync(path.join(clone, 'first-request.json'), JSON.stringify(first));
    },
  );

  it(
    'a second start keeps the archive and its state and the demo backups as they were; with JavaScript on (live progress, link countdown); SIGTERM leaves nothing running',
    { timeout: 600_000 },
    async () => {
      const first = JSON.parse(readFileSync(path.join(clone, 'first-request.json'), 'utf8')) as { archiveUrl: string; requestId: string };
      const backups = path.join(dataDir, 'backup-host', 'backups');
      const before = treeDigest(backups);
      const archivesBefore = readdirSync(path.join(dataDir, 'backup-host', 'archives'));
      // watch removes a downloaded archive's file at once; its record and state stay.
      expect(archivesBefore.filter((n) => n.endsWith('.tar') || n.endsWith('.tar.gz'))).toEqual([]);

      const port = await freeLoopbackPort();
      // No cooldown this time: the first test already saw it, and the second archive need not wait for it.
      const server = await startFirstLook({
        cwd: clone,
        npm: false,
        env: { ARCHWAY_DATA_DIR: dataDir, ARCHWAY_PORT: String(port), ARCHWAY_ARCHIVE_COOLDOWN: '0' },
      });
      expect(server.output()).not.toContain('generated the demo backups');
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${server.url}/sign-in`);
      await page.fill('#email', 'demo-customer@example.net');
      await page.fill('#password', demoCustomerPassword());
      await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign in")')]);
      await page.goto(first.archiveUrl.replace(/^http:\/\/[^/]+/, server.url));
      expect(await page.textContent('#archive-state')).toBe('downloaded');
      await context.close();

      await downloadAnArchive(server, { javaScriptEnabled: true, snapshotIndex: 1, cooldown: false });
      expectDispatcherWatchRunning();
      expect(await server.stop('SIGTERM')).toBe(0);
      expectNoProcessLeft();
      expect(treeDigest(backups)).toBe(before);
      expect(readdirSync(path.join(dataDir, 'backup-host', 'archives'))).toEqual(expect.arrayContaining(archivesBefore));
    },
  );
});

describe('first look with a backup host of its own choosing', () => {
  it(
    "ARCHWAY_FIRST_LOOK_BACKUPS serves that tree instead of demo backups; a configured backup host turns first look's off",
    { timeout: 300_000 },
    async () => {
      const own = path.join(clone, 'my-backups');
      mkdirSync(path.join(own, 'demo.example.net', 'nightly-1'), { recursive: true });
      writeFileSync(path.join(own, 'demo.example.net', 'nightly-1', 'site.txt'), 'mine\n');
      const ownData = path.join(clone, 'var-own');
      const server = await startFirstLook({
        cwd: clone,
        npm: false,
        env: { ARCHWAY_DATA_DIR: ownData, ARCHWAY_PORT: '0', ARCHWAY_FIRST_LOOK_BACKUPS: own },
      });
      const config = JSON.parse(readFileSync(path.join(ownData, 'backup-host', 'dispatcher.json'), 'utf8')) as { backupRoot: string };
      expect(config.backupRoot).toBe(own);
      expect(existsSync(path.join(ownData, 'backup-host', 'backups'))).toBe(false);
      expect(await server.stop('SIGTERM')).toBe(0);

      const otherData = path.join(clone, 'var-configured');
      const configured = await startFirstLook({
        cwd: clone,
        npm: false,
        env: { ARCHWAY_DATA_DIR: otherData, ARCHWAY_PORT: '0', ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: path.join(clone, 'elsewhere.json') },
      });
      expect(existsSync(path.join(otherData, 'backup-host'))).toBe(false);
      expect(configured.output()).not.toContain('first-look backup host');
      expect(processesMentioning(otherData)).toEqual([expect.objectContaining({ pid: configured.child.pid })]);
      expect(await configured.stop('SIGTERM')).toBe(0);
      expect(processesMentioning(path.join(clone, 'var-'))).toEqual([]);
    },
  );
});
