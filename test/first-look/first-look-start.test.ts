// `npm start` alone, as a newcomer runs it: Chromium signs in as the demo customer, asks for an archive, follows the mailed link and downloads it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../backup-host/fixture.js';
import { launchBrowser, type TestBrowser } from '../harness/browser.js';
import { freeLoopbackPort } from '../harness/sshd.js';
import { filesUnder, processesMentioning, removeScratch, scratchClone, startFirstLook, treeDigest, type FirstLookServer } from './first-look-world.js';

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

/** The link of the newest "ready" email for this request, read from the outbox as the newcomer could. */
async function mailedLink(requestId: string): Promise<string> {
  const outbox = path.join(dataDir, 'outbox');
  return eventually('the link email', async () => {
    // The outbox folder appears with the first message the portal writes.
    if (!existsSync(outbox)) return undefined;
    for (const name of readdirSync(outbox).filter((n) => n.endsWith('.eml')).sort().reverse()) {
      const mail = await simpleParser(readFileSync(path.join(outbox, name)));
      const link = new RegExp(`http://[^\\s"]+/downloads/${requestId}\\?t=[A-Za-z0-9_-]{43}`).exec(mail.text ?? '');
      if (link) return link[0];
    }
    return undefined;
  }, { timeoutMs: 60_000 });
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
async function downloadAnArchive(server: FirstLookServer, options: { javaScriptEnabled: boolean; snapshotIndex: number }) {
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

  // The real dispatcher builds it; the portal's poller sees it ready.
  await eventually('the archive to be ready', async () => {
    const state = await stateOf(context, archiveUrl);
    if (state === 'failed') throw new Error(`the build failed:\n${server.output()}`);
    return state === 'ready to download' ? true : undefined;
  }, { timeoutMs: 120_000 });
  await page.goto(archiveUrl);
  const sha256 = (await page.textContent('#archive-sha256'))!;
  expect(sha256).toMatch(/^[0-9a-f]{64}$/);

  // The emailed link, then the download page's 60-second link to the first-look download server.
  const link = await mailedLink(requestId!);
  const token = new URL(link).searchParams.get('t')!;
  await page.goto(link);
  expect(page.url()).toBe(`${server.url}/downloads/${requestId}`);
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
  expect(listing.stdout.split('\n')).toEqual(expect.arrayContaining(['./postgresql/mastodon_production.sql', './mastodon/live/.env.production']));
  expect(listing.stdout).toMatch(/\.\/mastodon\/live\/public\/system\/media_attachments\/files\/(\d{3}\/){6}original\/[0-9a-f]{16}\.jpg/);

  // watch read the download server's log line; the portal copied the event: the page says downloaded.
  await eventually('the archive page to say downloaded', async () => ((await stateOf(context, archiveUrl)) === 'downloaded' ? true : undefined), { timeoutMs: 60_000 });
  await context.close();
  return { requestId: requestId!, token, archiveUrl };
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
  it('npm start: the demo customer downloads an archive with JavaScript off; the token stays in the mail only; Ctrl-C leaves nothing running', { timeout: 600_000 }, async () => {
    browser = await launchBrowser();
    const port = await freeLoopbackPort();
    const server = await startFirstLook({ cwd: clone, npm: true, env: { ARCHWAY_DATA_DIR: dataDir, ARCHWAY_PORT: String(port) } });
    outputs.push(server.output());

    // The backup host's layout and modes, as the install script makes them.
    const host = path.join(dataDir, 'backup-host');
    const mode = (p: string) => (statSync(path.join(host, p)).mode & 0o777).toString(8);
    expect({ root: mode('.'), archives: mode('archives'), links: mode('links'), state: mode('state'), secret: mode('secure-link.secret'), config: mode('dispatcher.json') })
      .toEqual({ root: '700', archives: '750', links: '750', state: '700', secret: '600', config: '600' });
    expect(existsSync(path.join(host, 'log', 'download.log'))).toBe(true);

    const first = await downloadAnArchive(server, { javaScriptEnabled: false, snapshotIndex: 0 });
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
  });

  it('a second start keeps the archive and its state and the demo backups as they were; with JavaScript on; SIGTERM leaves nothing running', { timeout: 600_000 }, async () => {
    const first = JSON.parse(readFileSync(path.join(clone, 'first-request.json'), 'utf8')) as { archiveUrl: string; requestId: string };
    const backups = path.join(dataDir, 'backup-host', 'backups');
    const before = treeDigest(backups);
    // A completed download's file is removed at once (its record stays), so no archive is kept on disk.
    expect(readdirSync(path.join(dataDir, 'backup-host', 'archives')).filter((n) => n.endsWith('.tar'))).toEqual([]);

    const port = await freeLoopbackPort();
    // No cooldown on this start, so the same customer may ask for the next archive at once.
    const server = await startFirstLook({ cwd: clone, npm: false, env: { ARCHWAY_DATA_DIR: dataDir, ARCHWAY_PORT: String(port), ARCHWAY_ARCHIVE_COOLDOWN: '0' } });
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

    await downloadAnArchive(server, { javaScriptEnabled: true, snapshotIndex: 1 });
    expectDispatcherWatchRunning();
    expect(await server.stop('SIGTERM')).toBe(0);
    expectNoProcessLeft();
    expect(treeDigest(backups)).toBe(before);
  });
});

describe('first look with a backup host of its own choosing', () => {
  it('ARCHWAY_FIRST_LOOK_BACKUPS serves that tree instead of demo backups; a configured backup host turns first look\'s off', { timeout: 300_000 }, async () => {
    const own = path.join(clone, 'my-backups');
    mkdirSync(path.join(own, 'demo.example.net', 'nightly-1'), { recursive: true });
    writeFileSync(path.join(own, 'demo.example.net', 'nightly-1', 'site.txt'), 'mine\n');
    const ownData = path.join(clone, 'var-own');
    const server = await startFirstLook({ cwd: clone, npm: false, env: { ARCHWAY_DATA_DIR: ownData, ARCHWAY_PORT: '0', ARCHWAY_FIRST_LOOK_BACKUPS: own } });
    const config = JSON.parse(readFileSync(path.join(ownData, 'backup-host', 'dispatcher.json'), 'utf8')) as { backupRoot: string };
    expect(config.backupRoot).toBe(own);
    expect(existsSync(path.join(ownData, 'backup-host', 'backups'))).toBe(false);
    expect(await server.stop('SIGTERM')).toBe(0);

    const otherData = path.join(clone, 'var-configured');
    const configured = await startFirstLook({ cwd: clone, npm: false, env: { ARCHWAY_DATA_DIR: otherData, ARCHWAY_PORT: '0', ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: path.join(clone, 'elsewhere.json') } });
    expect(existsSync(path.join(otherData, 'backup-host'))).toBe(false);
    expect(configured.output()).not.toContain('first-look backup host');
    expect(processesMentioning(otherData)).toEqual([expect.objectContaining({ pid: configured.child.pid })]);
    expect(await configured.stop('SIGTERM')).toBe(0);
    expect(processesMentioning(path.join(clone, 'var-'))).toEqual([]);
  });
});
