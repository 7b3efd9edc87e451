// After the download: the receipt email (once), the downloaded state on the archive's page, the
// cooldown before the next archive, and the live progress of an archive being made (JavaScript on and off).
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueDownloadReceipt } from '../../src/archives/download-receipt.js';
import { formatBytes, formatUtc } from '../../src/format.js';
import { syncBackupHostEvents } from '../../src/archives/event-sync.js';
import { launchBrowser, type TestBrowser } from '../harness/browser.js';
import { WebClient } from '../harness/web-client.js';
import { eventually } from '../harness/eventually.js';
import {
  askForArchive,
  deliverQueuedMail,
  makeSnapshot,
  PUBLIC_URL,
  pollUntil,
  readyArchive,
  releaseBuild,
  requestRow,
  signedIn,
  startArchiveWorld,
  type ArchiveWorld,
  type ReadyArchive,
} from './archive-world.js';
import { createUser, PASSWORD } from '../harness/users.js';

/** The little of the browser's globals the page functions use (the tests are type-checked without the DOM's types). */
interface Dom {
  document: { querySelector(selector: string): unknown; getElementById(id: string): { textContent: string | null } | null };
  archwayMarker?: string;
}

let world: ArchiveWorld;
let browser: TestBrowser;
let origin: string;

beforeAll(async () => {
  world = await startArchiveWorld();
  origin = await world.app.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await world?.close();
});

const db = () => world.app.ctx.database.db;
const sync = () =>
  syncBackupHostEvents({
    db: db(),
    backupHost: world.app.ctx.backupHosts.use('default'),
    clock: world.clock,
    publicUrl: PUBLIC_URL,
    mail: world.app.ctx.mail,
  });
const dispatcherEvents = () =>
  world.dispatcher.run('events.since', { after: 0 }).answer.result.events as Array<{ type: string; archiveId: string }>;
const callLogLines = () =>
  readFileSync(join(world.dispatcher.stateDir, 'dispatcher.log'), 'utf8')
    .split('\n')
    .filter((l) => l !== '').length;

/**
 * Opens the emailed link, takes the 60-second link the page hands out, and writes what NGINX logs
 * when that link is fetched (whole, or cut off); `watch` then records the download on the backup host.
 */
async function download(ready: ReadyArchive, options: { ip: string; bytes?: number }): Promise<void> {
  await ready.client.get(ready.link.path);
  const page = await ready.client.get(`/downloads/${ready.id}`);
  const href = /id="download-link" href="([^"]+)"/.exec(page.body)?.[1];
  if (href === undefined) throw new Error(`no download link on the page: ${page.body.slice(0, 500)}`);
  const row = await requestRow(world, ready.id);
  const size = Number(row.size_bytes);
  const whole = options.bytes === undefined;
  const line = {
    time: new Date().toISOString(),
    remote_addr: options.ip,
    uri: new URL(href.replace(/&amp;/g, '&')).pathname,
    status: 200,
    bytes: options.bytes ?? size,
    completion: whole ? 'OK' : '',
    request_time: 0.5,
  };
  appendFileSync(world.dispatcher.downloadLog, `${JSON.stringify(line)}\n`);
  const type = whole ? 'download.completed' : 'download.interrupted';
  const watch: ChildProcess = world.dispatcher.start(['watch']);
  try {
    await eventually(`the ${type} event`, () => dispatcherEvents().some((e) => e.archiveId === row.archive_id && e.type === type));
  } finally {
    await new Promise<void>((resolve) => {
      watch.once('exit', () => resolve());
      watch.kill('SIGTERM');
    });
  }
}

describe('a completed download', () => {
  let ready: ReadyArchive;

  beforeAll(async () => {
    ready = await readyArchive(world);
  });

  it('emails the customer one receipt with when, from where, size and SHA-256, and what to do if it was not them', async () => {
    await deliverQueuedMail(world);
    await download(ready, { ip: '203.0.113.44' });
    expect(await sync()).toMatchObject({ outcome: 'synced', downloaded: 1 });
    const row = await requestRow(world, ready.id);
    expect(row).toMatchObject({ state: 'downloaded', downloaded_ip: '203.0.113.44', downloaded_bytes: row.size_bytes });
    expect(row.receipt_queued_at).not.toBeNull();

    const mails = await deliverQueuedMail(world);
    expect(mails).toHaveLength(1);
    const [receipt] = mails;
    expect(receipt!.to).toMatchObject({ text: ready.user.email });
    expect(receipt!.subject).toBe('Your Archway archive was downloaded');
    const size = Number(row.size_bytes);
    const text = receipt!.text ?? '';
    expect(text).toContain(`When: ${formatUtc(row.finished_at!)}`);
    expect(text).toContain('From the address: 203.0.113.44');
    expect(text).toContain(`Size: ${formatBytes(size)} (${size} bytes)`);
    expect(text).toContain(`SHA-256: ${row.sha256}`);
    expect(text).toContain(`${PUBLIC_URL}/account/devices ("Sign out everywhere, this browser too")`);
    expect(text).toContain(`"Forgot your password?" on the sign-in page (${PUBLIC_URL}/forgot-password)`);
    expect(receipt!.html).toContain(`<a href="${PUBLIC_URL}/account/devices">`);
  });

  it('sends no second receipt when the same events are seen again, by one sync or two at once', async () => {
    const host = world.app.ctx.backupHosts.use('default');
    const mailRows = () => db().selectFrom('mail_queue').select('id').where('template', '=', 'archive-downloaded').execute();
    expect(await mailRows()).toHaveLength(1);
    expect(await sync()).toMatchObject({ outcome: 'synced', received: 0, downloaded: 0 });
    // As if the progress row were lost: every event comes again, from two instances at once.
    await db().updateTable('backup_host_sync').set({ last_seq: 0 }).execute();
    const both = await Promise.all([
      syncBackupHostEvents({ db: db(), backupHost: host, clock: world.clock, publicUrl: PUBLIC_URL, mail: world.app.ctx.mail }),
      syncBackupHostEvents({ db: db(), backupHost: host, clock: world.clock, publicUrl: PUBLIC_URL, mail: world.app.ctx.mail }),
    ]);
    for (const result of both)
      expect(result).toMatchObject(result.outcome === 'busy' ? { outcome: 'busy' } : { outcome: 'synced', downloaded: 0 });
    // Even asked directly, the receipt is claimed once.
    expect(
      await db()
        .transaction()
        .execute((trx) => queueDownloadReceipt(trx, world.app.ctx.mail, ready.id, world.clock.now(), PUBLIC_URL)),
    ).toBe(false);
    expect(await mailRows()).toHaveLength(1);
    expect(await deliverQueuedMail(world)).toEqual([]);
  });

  it("shows the download's time, address and bytes on the archive's page, and that a receipt was emailed", async () => {
    const row = await requestRow(world, ready.id);
    const page = await ready.client.get(`/archives/${ready.id}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<dd id="archive-state">downloaded</dd>');
    expect(page.body).toContain(`<dd id="downloaded-at">${formatUtc(row.finished_at!)}</dd>`);
    expect(page.body).toContain('<dd id="downloaded-ip">203.0.113.44</dd>');
    expect(page.body).toContain(`<dd id="downloaded-bytes">${formatBytes(Number(row.size_bytes))} (${row.size_bytes} bytes)</dd>`);
    expect(page.body).toContain(`<p id="receipt">We emailed you a receipt of this download (${formatUtc(row.receipt_queued_at!)}).`);
    expect(page.body).not.toContain('http-equiv="refresh"');
  });

  it('shows when the next archive can be asked for instead of the form, and a POST meanwhile changes nothing', async () => {
    const row = await requestRow(world, ready.id);
    const end = new Date(row.finished_at!.getTime() + 24 * 3_600_000);
    const shownEnd = formatUtc(new Date(Math.ceil(end.getTime() / 60_000) * 60_000));
    const callsBefore = callLogLines();

    const page = await ready.client.get('/backups');
    expect(page.status).toBe(200);
    const cooldown = /<p class="flash" role="status" id="cooldown">([\s\S]*?)<\/p>/.exec(page.body)?.[1] ?? '';
    expect(cooldown).toContain(`You can ask for your next archive from <strong>${shownEnd}</strong>`);
    expect(cooldown).toMatch(/\(in (24 hours|23 hours and \d{1,2} minutes?)\)/);
    expect(page.body).not.toContain('name="snapshot"');
    expect(page.body).not.toContain('Ask for an archive</button>');

    const before = {
      requests: await db().selectFrom('archive_requests').selectAll().orderBy('id').execute(),
      audit: await db().selectFrom('audit_log').selectAll().execute(),
    };
    const refused = await ready.client.post('/archives', { snapshot: 'daily.0' });
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(23 * 3600);
    expect(retryAfter).toBeLessThanOrEqual(24 * 3600);
    expect(refused.body).toContain(`You can ask for your next archive from <strong>${shownEnd}</strong>`);
    expect(refused.body).not.toContain('name="snapshot"');
    expect({
      requests: await db().selectFrom('archive_requests').selectAll().orderBy('id').execute(),
      audit: await db().selectFrom('audit_log').selectAll().execute(),
    }).toEqual(before);
    // Neither the page nor the refused POST called the backup host.
    expect(callLogLines()).toBe(callsBefore);

    // Once the cooldown is over, the form is back and works.
    world.clock.advance(24 * 3_600_000);
    const client = await signedIn(world, ready.user);
    const after = await client.get('/backups');
    expect(after.body).not.toContain('id="cooldown"');
    expect(after.body).toContain('name="snapshot"');
    const next = await askForArchive(client, 'daily.0');
    expect(next).not.toBe(ready.id);
    await pollUntil(world, next, ['ready']);
  });
});

describe("an archive's progress", () => {
  it("is JSON for its owner only; anyone else's, a malformed id or no session gets what an unknown page gets", async () => {
    const owner = await createUser(world.app);
    const snapshot = makeSnapshot(world, owner.domain!, 'daily.0', 1, { held: true });
    const client = await signedIn(world, owner);
    const id = await askForArchive(client, 'daily.0');
    const answer = await client.get(`/archives/${id}/progress`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(answer.body)).toEqual({
      state: 'building',
      stateText: 'being made',
      working: true,
      percent: null,
      written: '0 bytes in 0 files',
    });

    const stranger = await signedIn(world, await createUser(world.app));
    for (const url of [
      `/archives/${id}/progress`,
      '/archives/not-a-uuid/progress',
      '/archives/00000000-0000-4000-8000-000000000000/progress',
    ]) {
      const res = await stranger.get(url);
      expect({ url, status: res.status }).toEqual({ url, status: 404 });
      expect(res.body).not.toContain('"state"');
    }
    const anonymous = await new WebClient(world.app).get(`/archives/${id}/progress`);
    expect(anonymous.status).toBe(303);
    releaseBuild(snapshot);
    await pollUntil(world, id, ['ready']);
  });

  it('updates in place with JavaScript on, without reloading, then shows the ready archive; without JavaScript the page refreshes itself', async () => {
    const owner = await createUser(world.app);
    const snapshot = makeSnapshot(world, owner.domain!, 'daily.0', 1, { held: true });
    const context = await browser.newContext({ javaScriptEnabled: true });
    const page = await context.newPage();
    await page.goto(`${origin}/sign-in`);
    await page.fill('#email', owner.email);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign in")')]);
    await page.goto(`${origin}/backups`);
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Ask for an archive")')]);
    const id = /\/archives\/([0-9a-f-]{36})$/.exec(page.url())![1]!;

    const navigations: string[] = [];
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) navigations.push(frame.url());
    });
    await page.evaluate(() => {
      (globalThis as unknown as Dom).archwayMarker = 'still here';
    });
    // The script takes over: the meta refresh is gone.
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelector('meta[http-equiv="refresh"]') === null);

    // What the poller would store as the build goes on; the page follows in place, twice (past the 5-second refresh).
    for (const [percent, bytes, files] of [
      [37, 123_456, 12],
      [64, 2_345_678, 250],
    ] as const) {
      await db()
        .updateTable('archive_requests')
        .set({ percent, bytes_written: bytes, files_written: files })
        .where('id', '=', id)
        .execute();
      await page.waitForFunction(
        (p) => (globalThis as unknown as Dom).document.getElementById('archive-percent')?.textContent === `${p} %`,
        percent,
        { timeout: 15_000 },
      );
      expect(await page.getAttribute('#archive-progress', 'value')).toBe(String(percent));
      expect(await page.textContent('#archive-written')).toBe(`${formatBytes(bytes)} in ${files} files`);
      expect(await page.textContent('#progress-live')).toBe(`being made, ${percent} %`);
      expect(await page.getAttribute('#progress-live', 'aria-live')).toBe('polite');
    }
    expect(await page.evaluate(() => (globalThis as unknown as Dom).archwayMarker)).toBe('still here');
    expect(navigations).toEqual([]);

    // Without JavaScript the same page carries the meta refresh.
    const plain = await browser.newContext();
    await plain.addCookies(await context.cookies());
    const plainPage = await plain.newPage();
    await plainPage.goto(`${origin}/archives/${id}`);
    expect(await plainPage.getAttribute('meta[http-equiv="refresh"]', 'content')).toBe('5');
    await plain.close();

    // Ready: the script reloads once, for the finished page.
    releaseBuild(snapshot);
    await pollUntil(world, id, ['ready']);
    // The finished page has no progress bar: it is the reloaded one, not the in-place text.
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.getElementById('archive-progress') === null, undefined, {
      timeout: 15_000,
    });
    expect(await page.textContent('#archive-state')).toBe('ready to download');
    expect(navigations).toEqual([`${origin}/archives/${id}`]);
    expect(await page.$('meta[http-equiv="refresh"]')).toBeNull();
    await context.close();
  }, 60_000);
});
