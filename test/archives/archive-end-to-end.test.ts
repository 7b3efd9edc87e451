// The whole archive flow with the real programs: Chromium (JavaScript off) -> portal -> sshd -> gate -> sudo -> dispatcher -> nginx -> watch.
import { fleetOfOne } from '../../src/config.js';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../src/users/user.repository.js';
import { buildApp } from '../../src/app.js';
import { pollDueArchives } from '../../src/archives/archive-poller.js';
import { syncBackupHostEvents } from '../../src/archives/event-sync.js';
import { sendDueLinks } from '../../src/archives/link-mailer.js';
import { deliverDueMail } from '../../src/mail/mail.worker.js';
import { backupHostFromSettings, type SshBackupHostSettings } from '../../src/backup-host/index.js';
import { AdjustableClock } from '../../src/clock.js';
import { startBackupHost, type BackupHostFixture, type WatchProcess } from '../backup-host/fixture.js';
import { eventually } from '../harness/eventually.js';
import { httpGet } from '../backup-host/http-get.js';
import { testConfig } from '../harness/app.js';
import { launchBrowser, type TestBrowser } from '../harness/browser.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { createSmtpSink, type SmtpSink } from '../harness/smtp-sink.js';
import { freeLoopbackPort } from '../harness/sshd.js';
import { WebClient } from '../harness/web-client.js';
import { everyStoredText } from './archive-world.js';
import { formatBytes } from '../../src/format.js';
import { createUser, PASSWORD } from '../harness/users.js';

let host: BackupHostFixture;
let watch: WatchProcess;
let settings: SshBackupHostSettings;
let database: TestDatabase;
let sink: SmtpSink;
let app: FastifyInstance;
let origin: string;
let browser: TestBrowser;
let customer: User;
const clock = new AdjustableClock();
const logLines: string[] = [];

/** Waits for `probe`; a timeout says what watch printed, the usual reason for a wait that never ends. */
const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000) =>
  eventually(what, probe, { timeoutMs, explain: () => `watch said:\n${watch?.output() ?? ''}` });

beforeAll(async () => {
  host = await startBackupHost({ dispatcherSettings: { progressIntervalMs: 20, watchPollMs: 50 } });
  watch = await host.startWatch();
  settings = host.portalSettings;
  database = await createTestDatabase();
  sink = await createSmtpSink();
  // The emailed link must reach this very app, so its address is chosen before the app is built.
  const port = await freeLoopbackPort();
  origin = `http://127.0.0.1:${port}`;
  const config = {
    ...testConfig(database.url, { ARCHWAY_SMTP_URL: sink.url, ARCHWAY_PUBLIC_URL: origin }),
    backupHosts: fleetOfOne(settings),
  };
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  app = await buildApp({ config, database: database.handle, logStream, clock });
  await app.listen({ host: '127.0.0.1', port });
  browser = await launchBrowser();

  customer = await createUser(app, { email: 'nora@example.net', domain: 'nora.example.org' });
  const snapshot = join(host.backupRoot, 'nora.example.org', 'daily.0');
  await mkdir(join(snapshot, 'public'), { recursive: true });
  await writeFile(join(snapshot, 'public', 'index.html'), '<h1>Nora</h1>\n');
  await writeFile(join(snapshot, 'db.sql'), randomBytes(2 * 1024 * 1024));
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await sink?.stop();
  await database?.drop();
  await host?.stop();
});

async function signIn(context: BrowserContext, startAt: string) {
  const page = await context.newPage();
  await page.goto(startAt);
  await page.fill('#email', customer.email);
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign in")')]);
  return page;
}

describe('a customer downloads an archive of their backup', () => {
  it('asks for it, gets the email, opens the link signed out, signs in, downloads it once, and is told so afterwards', async () => {
    // Signed in, JavaScript off: the backups page lists the snapshot, the latest chosen.
    const asking = await browser.newContext();
    const page = await signIn(asking, `${origin}/sign-in`);
    await page.goto(`${origin}/backups`);
    expect(await page.isChecked('input[name="snapshot"][value="daily.0"]')).toBe(true);
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Ask for an archive")')]);
    const requestId = /\/archives\/([0-9a-f-]{36})$/.exec(page.url())?.[1];
    expect(requestId).toBeDefined();
    expect(await page.textContent('#archive-state')).toBe('being made');

    // The poller asks the backup host over SSH until the archive is ready.
    await until('the archive to be ready', async () => {
      clock.advance(5_000);
      await pollDueArchives(app.ctx, { now: () => clock.now() });
      const row = await app.ctx.database.db
        .selectFrom('archive_requests')
        .select('state')
        .where('id', '=', requestId!)
        .executeTakeFirstOrThrow();
      if (row.state === 'failed') throw new Error('the build failed');
      return row.state === 'ready' ? true : undefined;
    });
    await page.reload();
    expect(await page.textContent('#archive-state')).toBe('ready to download');
    const row = await app.ctx.database.db.selectFrom('archive_requests').selectAll().where('id', '=', requestId!).executeTakeFirstOrThrow();
    await asking.close();

    // The link mailer arms a new token over SSH and emails the link straight to the SMTP server.
    expect(await sendDueLinks(app.ctx, { now: () => clock.now() })).toEqual(['sent']);
    const [mail] = await sink.waitForMessages(1);
    const link = new RegExp(`${origin.replace(/[.:/]/g, '\\$&')}/downloads/${requestId}\\?t=([A-Za-z0-9_-]{43})`).exec(mail!.text ?? '');
    expect(link).not.toBeNull();
    const token = link![1]!;

    // Another browser, not signed in, opens the emailed link: through sign-in to the download page.
    const downloading = await browser.newContext();
    const visited: string[] = [];
    const referers: string[] = [];
    const tab = await downloading.newPage();
    tab.on('framenavigated', (frame) => {
      if (frame === tab.mainFrame()) visited.push(frame.url());
    });
    tab.on('request', (request) => referers.push(request.headers().referer ?? ''));
    await tab.goto(link![0]);
    expect(tab.url()).toBe(`${origin}/sign-in?next=${encodeURIComponent(`/downloads/${requestId}`)}`);
    await tab.fill('#email', customer.email);
    await tab.fill('#password', PASSWORD);
    await Promise.all([tab.waitForNavigation(), tab.click('button:has-text("Sign in")')]);
    expect(tab.url()).toBe(`${origin}/downloads/${requestId}`);
    expect(await tab.textContent('h1')).toBe('Your download is ready');
    expect(await tab.textContent('main')).toContain('only from your address 127.0.0.1');
    expect(await tab.textContent('main')).toContain('reload this page for a fresh one');
    const url = await tab.getAttribute('#download-link', 'href');
    expect(url).toMatch(
      new RegExp(
        `^${host.downloadBaseUrl.replace(/[.:/]/g, '\\$&')}/dl/[0-9a-f]{32}/nora\\.example\\.org-daily\\.0-[0-9a-f]{8}\\.tar\\?md5=[A-Za-z0-9_-]{22}&expires=\\d+$`,
      ),
    );

    // The token stayed out of every page the browser kept and every Referer it sent.
    expect(visited.length).toBeGreaterThanOrEqual(2);
    for (const address of visited) expect(address).not.toContain(token);
    for (const referer of referers) expect(referer).not.toContain(token);
    // It sits only in the sealed, HttpOnly cookie of this one page.
    const cookies = await downloading.cookies();
    const sealed = cookies.find((c) => c.name === 'archway-download');
    expect(sealed).toMatchObject({ path: `/downloads/${requestId}`, httpOnly: true, sameSite: 'Lax' });
    expect(sealed!.value).not.toContain(token);

    // The secure_link URL gives the byte-identical archive, from this address. The archive is read
    // first: once watch records the completed download, sweep may remove it at any moment.
    const archived = await readFile(join(host.archiveRoot, `${row.archive_id}.tar`));
    const fetched = await httpGet(url!, { localAddress: '127.0.0.1' });
    expect(fetched.status).toBe(200);
    expect(fetched.body.equals(archived)).toBe(true);
    expect(fetched.sha256).toBe(row.sha256);

    // watch reads the download log and marks the archive downloaded; a reload then says so.
    const client = backupHostFromSettings(settings);
    await until('the download to be recorded', async () =>
      (await client.archiveStatus({ customer: 'nora.example.org', archiveId: row.archive_id! })).state === 'downloaded' ? true : undefined,
    );
    await tab.reload();
    expect(await tab.textContent('#download-problem')).toBe('This archive has already been downloaded.');
    expect(await tab.$('#download-link')).toBeNull();
    expect((await downloading.cookies()).find((c) => c.name === 'archway-download')).toBeUndefined();

    // Once the portal has copied the backup host's events, its own pages say so too.
    expect(
      await syncBackupHostEvents({ db: app.ctx.database.db, backupHost: client, clock, publicUrl: origin, mail: app.ctx.mail }),
    ).toMatchObject({
      outcome: 'synced',
      downloaded: 1,
    });
    await tab.goto(`${origin}/archives/${requestId}`);
    expect(await tab.textContent('#archive-state')).toBe('downloaded');
    await tab.goto(`${origin}/downloads/${requestId}`);
    expect(await tab.textContent('#download-problem')).toContain('This archive has already been downloaded');
    await downloading.close();

    // Nothing the portal stored or logged holds the token.
    const stored = await everyStoredText({ app });
    const logged = logLines.join('');
    expect(logged).toContain('download link issued');
    for (const text of [stored, logged]) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(Buffer.from(token).toString('hex'));
    }
  });

  it('records a download cut off half-way as interrupted, offers a fresh link on the page, and the second download completes', async () => {
    const iris = await createUser(app, { email: 'iris@example.net', domain: 'iris.example.org' });
    const snapshot = join(host.backupRoot, 'iris.example.org', 'daily.0');
    await mkdir(snapshot, { recursive: true });
    // Large enough that the socket buffers cannot take it all before the client hangs up.
    await writeFile(join(snapshot, 'db.sql'), randomBytes(24 * 1024 * 1024));
    const client = new WebClient(app);
    expect((await client.signIn(iris.email, PASSWORD)).status).toBe(303);
    await client.get('/backups');
    const asked = await client.post('/archives', { snapshot: 'daily.0' });
    const requestId = /^\/archives\/([0-9a-f-]{36})$/.exec(asked.location ?? '')?.[1];
    expect(requestId).toBeDefined();
    await until(
      'the archive to be ready',
      async () => {
        clock.advance(5_000);
        await pollDueArchives(app.ctx, { now: () => clock.now() });
        const row = await app.ctx.database.db
          .selectFrom('archive_requests')
          .select('state')
          .where('id', '=', requestId!)
          .executeTakeFirstOrThrow();
        return row.state === 'ready' ? true : undefined;
      },
      60_000,
    );
    const row = await app.ctx.database.db.selectFrom('archive_requests').selectAll().where('id', '=', requestId!).executeTakeFirstOrThrow();
    const size = Number(row.size_bytes);
    const mailsBefore = sink.messages.length;
    expect(await sendDueLinks(app.ctx, { now: () => clock.now() })).toEqual(['sent']);
    const [mail] = (await sink.waitForMessages(mailsBefore + 1)).slice(mailsBefore);
    const token = /\/downloads\/[0-9a-f-]{36}\?t=([A-Za-z0-9_-]{43})/.exec(mail!.text ?? '')![1]!;

    const linkOnPage = async () => {
      const page = await client.get(`/downloads/${requestId}`);
      expect(page.status).toBe(200);
      return /id="download-link" href="([^"]+)"/.exec(page.body)![1]!.replace(/&amp;/g, '&');
    };
    expect((await client.get(`/downloads/${requestId}?t=${token}`)).status).toBe(303);
    const first = await linkOnPage();

    // The client stops after 1 MiB of the 24: NGINX logs the request as not complete.
    const cut = await httpGet(first, { localAddress: '127.0.0.1', stopAfterBytes: 1024 * 1024, discardBody: true });
    expect(cut).toMatchObject({ status: 200, aborted: true });
    const backupHost = backupHostFromSettings(settings);
    const sync = () => syncBackupHostEvents({ db: app.ctx.database.db, backupHost, clock, publicUrl: origin, mail: app.ctx.mail });
    await until('the interrupted download to be recorded', async () => {
      const { events } = await backupHost.eventsSince({ after: 0, limit: 1000 });
      return events.some((e) => e.archiveId === row.archive_id && e.type === 'download.interrupted') ? true : undefined;
    });
    expect(await sync()).toMatchObject({ outcome: 'synced' });
    const state = async () =>
      (await app.ctx.database.db.selectFrom('archive_requests').select('state').where('id', '=', requestId!).executeTakeFirstOrThrow())
        .state;
    expect(await state()).toBe('ready');
    const interrupted = await app.ctx.database.db
      .selectFrom('backup_host_events')
      .selectAll()
      .where('archive_id', '=', row.archive_id!)
      .where('type', '=', 'download.interrupted')
      .executeTakeFirstOrThrow();
    expect(interrupted.ip).toBe('127.0.0.1');
    expect(Number(interrupted.bytes)).toBeLessThan(size);

    // The archive's page says so and leads back to the download page, which hands out a fresh link.
    const archivePage = await client.get(`/archives/${requestId}`);
    expect(archivePage.body).toContain('<dd id="archive-state">ready to download</dd>');
    expect(archivePage.body).toMatch(
      /<p class="flash" role="status" id="download-interrupted">Your download [^<]* from 127\.0\.0\.1 stopped after /,
    );
    expect(archivePage.body).toContain(`<a href="/downloads/${requestId}" id="fresh-link">Open the download page again</a>`);
    const second = await linkOnPage();
    expect(second).not.toBe(first);
    // The cut-off link is gone; the fresh one delivers the whole archive.
    expect((await httpGet(first, { localAddress: '127.0.0.1', discardBody: true })).status).toBe(404);
    const whole = await httpGet(second, { localAddress: '127.0.0.1', discardBody: true });
    expect(whole).toMatchObject({ status: 200, aborted: false, bytes: size, sha256: row.sha256 });

    await until('the completed download to be recorded', async () =>
      (await backupHost.archiveStatus({ customer: 'iris.example.org', archiveId: row.archive_id! })).state === 'downloaded'
        ? true
        : undefined,
    );
    expect(await sync()).toMatchObject({ outcome: 'synced' });
    expect(await state()).toBe('downloaded');
    const done = await client.get(`/archives/${requestId}`);
    expect(done.body).toContain('<dd id="archive-state">downloaded</dd>');
    expect(done.body).toContain('<dd id="downloaded-ip">127.0.0.1</dd>');
    expect(done.body).toContain(`(${size} bytes)</dd>`);
    expect(done.body).not.toContain('id="download-interrupted"');
  }, 120_000);

  it('resumes a download interrupted twice with ranges from fresh links: downloaded once, SHA-256 equal, every byte but one is not enough', async () => {
    const remy = await createUser(app, { email: 'remy@example.net', domain: 'remy.example.org' });
    const snapshot = join(host.backupRoot, 'remy.example.org', 'daily.0');
    await mkdir(snapshot, { recursive: true });
    await writeFile(join(snapshot, 'db.sql'), randomBytes(24 * 1024 * 1024));
    const client = new WebClient(app);
    expect((await client.signIn(remy.email, PASSWORD)).status).toBe(303);
    await client.get('/backups');
    const requestId = /^\/archives\/([0-9a-f-]{36})$/.exec((await client.post('/archives', { snapshot: 'daily.0' })).location ?? '')![1]!;
    const requestRow = () =>
      app.ctx.database.db.selectFrom('archive_requests').selectAll().where('id', '=', requestId).executeTakeFirstOrThrow();
    await until(
      'the archive to be ready',
      async () => {
        clock.advance(5_000);
        await pollDueArchives(app.ctx, { now: () => clock.now() });
        return (await requestRow()).state === 'ready' ? true : undefined;
      },
      60_000,
    );
    const row = await requestRow();
    const size = Number(row.size_bytes);
    const archived = await readFile(join(host.archiveRoot, `${row.archive_id}.tar`));
    const mailsBefore = sink.messages.length;
    expect(await sendDueLinks(app.ctx, { now: () => clock.now() })).toEqual(['sent']);
    const [mail] = (await sink.waitForMessages(mailsBefore + 1)).slice(mailsBefore);
    const token = /\/downloads\/[0-9a-f-]{36}\?t=([A-Za-z0-9_-]{43})/.exec(mail!.text ?? '')![1]!;
    expect((await client.get(`/downloads/${requestId}?t=${token}`)).status).toBe(303);

    const backupHost = backupHostFromSettings(settings);
    const sync = () => syncBackupHostEvents({ db: app.ctx.database.db, backupHost, clock, publicUrl: origin, mail: app.ctx.mail });
    const downloadEvents = async () =>
      (await backupHost.eventsSince({ after: 0, limit: 1000 })).events.filter(
        (e) => e.archiveId === row.archive_id && e.type.startsWith('download.'),
      );
    /** Waits for the n-th download event of this archive on the backup host, then copies it into the portal. */
    const nthEvent = async (n: number) => {
      const event = await until(`download event ${n}`, async () => (await downloadEvents())[n - 1]);
      expect(await sync()).toMatchObject({ outcome: 'synced' });
      return event;
    };
    const freshPage = async () => {
      const page = await client.get(`/downloads/${requestId}`);
      expect(page.status).toBe(200);
      return { html: page.body, url: /id="download-link" href="([^"]+)"/.exec(page.body)![1]!.replace(/&amp;/g, '&') };
    };
    const dir = await mkdtemp(join(tmpdir(), 'archway-resume-'));
    const file = join(dir, row.download_file_name!);
    try {
      // First attempt: the whole file, cut after 1 MiB. The page had no resume section yet.
      const first = await freshPage();
      expect(first.html).not.toContain('id="resume"');
      const cut1 = await httpGet(first.url, { localAddress: '127.0.0.1', stopAfterBytes: 1024 * 1024 });
      expect(cut1).toMatchObject({ status: 200, aborted: true });
      await writeFile(file, cut1.body);
      expect((await nthEvent(1)).type).toBe('download.interrupted');

      // Second: a fresh link, a Range from where the file ends, cut again.
      const second = await freshPage();
      expect(second.url).not.toBe(first.url);
      expect(second.html).toContain('<section id="resume">');
      const have1 = cut1.body.length;
      const cut2 = await httpGet(second.url, {
        localAddress: '127.0.0.1',
        stopAfterBytes: 1024 * 1024,
        headers: { Range: `bytes=${have1}-` },
      });
      expect(cut2).toMatchObject({ status: 206, aborted: true });
      expect(cut2.headers['content-range']).toBe(`bytes ${have1}-${size - 1}/${size}`);
      await appendFile(file, cut2.body);
      expect((await nthEvent(2)).type).toBe('download.interrupted');

      // Third: every byte but the last one, delivered whole. Still not downloaded.
      const third = await freshPage();
      const have2 = have1 + cut2.body.length;
      const allButOne = await httpGet(third.url, { localAddress: '127.0.0.1', headers: { Range: `bytes=${have2}-${size - 2}` } });
      expect(allButOne).toMatchObject({ status: 206, aborted: false });
      await appendFile(file, allButOne.body);
      expect(await nthEvent(3)).toMatchObject({ type: 'download.interrupted', delivered: { bytes: size - 1, total: size, parts: 3 } });
      expect(await requestRow()).toMatchObject({ state: 'ready', delivered_bytes: String(size - 1), delivered_parts: 3 });
      expect((await backupHost.archiveStatus({ customer: 'remy.example.org', archiveId: row.archive_id! })).state).toBe('ready');

      // The page (HTML as sent) says how much arrived and gives the exact commands for the fresh link, escaped.
      const fourth = await freshPage();
      expect(fourth.html).toContain(
        `<p id="delivered">${formatBytes(size - 1)} of ${formatBytes(size)} delivered so far (${size - 1} of ${size} bytes, in 3 parts).</p>`,
      );
      expect(fourth.html).toContain(
        `<code id="resume-curl">curl -C - -o ${row.download_file_name} &#39;${fourth.url.replace(/&/g, '&amp;')}&#39;</code>`,
      );
      expect(fourth.html).toContain(
        `<code id="resume-wget">wget -c -O ${row.download_file_name} &#39;${fourth.url.replace(/&/g, '&amp;')}&#39;</code>`,
      );
      expect(fourth.html).toContain('it asks again with the old link, which has expired');

      // Last: headless Chromium (JavaScript on) shows the page to this same session, and the curl command it shows finishes the file.
      const context = await browser.newContext({ javaScriptEnabled: true });
      try {
        await context.addCookies(
          [...client.cookies].map(([name, value]) => ({
            name,
            value,
            domain: '127.0.0.1',
            path: name === 'archway-download' ? `/downloads/${requestId}` : '/',
          })),
        );
        const tab = await context.newPage();
        await tab.goto(`${origin}/downloads/${requestId}`);
        expect(await tab.textContent('#delivered')).toContain(`${size - 1} of ${size} bytes, in 3 parts`);
        expect(await tab.textContent('#browser-resume-warning')).toContain(`Your browser's own "Resume" will fail`);
        await tab.waitForFunction(() =>
          /more second/.test(
            String(
              (globalThis as { document?: { getElementById(id: string): { textContent: string } | null } }).document?.getElementById(
                'link-countdown',
              )?.textContent,
            ),
          ),
        );
        const curl = (await tab.textContent('#resume-curl'))!;
        const url = await tab.getAttribute('#download-link', 'href');
        expect(curl).toBe(`curl -C - -o ${row.download_file_name} '${url}'`);
        // The command as the customer pastes it, in the folder holding the partial file.
        await promisify(execFile)('sh', ['-c', `${curl} --silent --show-error --fail`], { cwd: dir });
      } finally {
        await context.close();
      }
      const done = await nthEvent(4);
      expect(done).toMatchObject({ type: 'download.completed', bytes: 1, delivered: { bytes: size, total: size, parts: 4 } });
      const whole = await readFile(file);
      expect(whole.equals(archived)).toBe(true);
      expect(createHash('sha256').update(whole).digest('hex')).toBe(row.sha256);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    // Downloaded exactly once, in the portal and on the backup host; the receipt and the operator's log name the parts.
    expect(await requestRow()).toMatchObject({ state: 'downloaded', downloaded_bytes: String(size), delivered_parts: 4 });
    expect((await downloadEvents()).filter((e) => e.type === 'download.completed')).toHaveLength(1);
    expect(await sync()).toMatchObject({ outcome: 'synced', received: 0 });
    const before = sink.messages.length;
    await deliverDueMail(app.ctx, { now: () => clock.now() });
    const receipts = sink.messages.slice(before).filter((m) => m.to && JSON.stringify(m.to).includes(remy.email));
    expect(receipts.map((m) => m.subject)).toEqual(['Your Archway archive was downloaded']);
    expect(receipts[0]!.text).toContain(`Delivered: in 4 parts (a resumed download; the address above is the last part's)`);
    expect(receipts[0]!.text).toContain(`SHA-256: ${row.sha256}`);
    const logged = await app.ctx.database.db
      .selectFrom('request_log')
      .select(['event', 'detail'])
      .where('kind', '=', 'download')
      .where('user_id', '=', remy.id)
      .orderBy('id')
      .execute();
    expect(logged.map((l) => [l.event, (l.detail as { delivered?: unknown }).delivered])).toEqual([
      ['interrupted', { bytes: expect.any(Number), total: size, parts: 1 }],
      ['interrupted', { bytes: expect.any(Number), total: size, parts: 2 }],
      ['interrupted', { bytes: size - 1, total: size, parts: 3 }],
      ['completed', { bytes: size, total: size, parts: 4 }],
    ]);
    const after = await client.get(`/downloads/${requestId}`);
    expect(after.status).toBe(410);
  }, 180_000);
});
