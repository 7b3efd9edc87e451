// The first-look Mailbox: each signed-in user reads the outbox messages sent to their own address, and nobody else's.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../src/users/user.repository.js';
import { buildApp } from '../../src/app.js';
import { connectDatabase } from '../../src/db/connect.js';
import { outboxFileName } from '../../src/mail/mail.transport.js';
import { deliverDueMail } from '../../src/mail/mail.worker.js';
import { testConfig } from '../harness/app.js';
import { launchBrowser, type TestBrowser } from '../harness/browser.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { WebClient } from '../harness/web-client.js';
import { createUser, PASSWORD } from '../harness/users.js';

let database: TestDatabase;
let dataDir: string;
let outboxDir: string;
let app: FastifyInstance;
let origin: string;
let browser: TestBrowser;
let alice: User;
let bob: User;
const bobSecret = `bob-only-${randomBytes(8).toString('hex')}`;
/** Bob's message file name, which Alice will try to guess. */
let bobMessageId: string;

/** A hand-written message in the outbox, as a hostile or odd HTML mail would look to the viewer. */
async function writeEml(to: string, subject: string, html: string, at: Date): Promise<string> {
  const name = outboxFileName(at, randomUUID());
  const eml = [
    'From: Archway <archway@localhost>',
    `To: ${to}`,
    `Subject: ${subject}`,
    `Date: ${at.toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 7bit',
    '',
    'The plain part.',
    '--b1',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 7bit',
    '',
    html,
    '--b1--',
    '',
  ].join('\n');
  await writeFile(path.join(outboxDir, name), eml, { mode: 0o600 });
  return name.replace(/\.eml$/, '');
}

async function signedIn(user: User): Promise<WebClient> {
  const client = new WebClient(app);
  expect((await client.signIn(user.email, PASSWORD)).status).toBe(303);
  return client;
}

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'archway-mailbox-'));
  outboxDir = path.join(dataDir, 'outbox');
  const base = testConfig(database.url);
  // First look: no SMTP relay, so mail goes to the outbox (and the banner shows).
  app = await buildApp({
    config: { ...base, mode: 'first-look', mail: { ...base.mail, smtpUrl: null, outboxDir } },
    database: database.handle,
  });
  origin = await app.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchBrowser();
  alice = await createUser(app, { email: 'alice@example.net' });
  bob = await createUser(app, { email: 'bob@example.net' });

  await app.ctx.mail.enqueue(database.handle.db, { to: alice.email, template: 'test-message', data: { note: 'first for alice' } });
  expect(await deliverDueMail(app.ctx)).toEqual(['sent']);
  await app.ctx.mail.enqueue(database.handle.db, { to: bob.email, template: 'test-message', data: { note: bobSecret } });
  expect(await deliverDueMail(app.ctx)).toEqual(['sent']);
  await app.ctx.mail.enqueue(database.handle.db, {
    to: 'ALICE@example.net',
    template: 'test-message',
    data: { note: `second for alice ${app.ctx.config.publicUrl}/account` },
  });
  expect(await deliverDueMail(app.ctx)).toEqual(['sent']);
  const names = (await readdir(outboxDir)).sort();
  expect(names).toHaveLength(3);
  bobMessageId = names[1]!.replace(/\.eml$/, '');
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('the first-look mailbox', () => {
  it("lists only the signed-in user's own messages, newest first", async () => {
    const client = await signedIn(alice);
    const page = await client.get('/mailbox');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('<h1>Mailbox</h1>');
    const ids = [...page.body.matchAll(/<a href="\/mailbox\/([^"/]+)">Archway test message<\/a>/g)].map((m) => m[1]);
    const names = (await readdir(outboxDir)).sort();
    expect(ids).toEqual([names[2], names[0]].map((n) => n!.replace(/\.eml$/, '')));
    expect(page.body).not.toContain(bobMessageId);

    // The newest one reads as plain text, with the portal's own address a link.
    const text = await client.get(`/mailbox/${ids[0]}`);
    expect(text.status).toBe(200);
    expect(text.headers['cache-control']).toBe('no-store');
    expect(text.body).toContain(`second for alice <a href="${app.ctx.config.publicUrl}/account">${app.ctx.config.publicUrl}/account</a>`);
    expect(text.body).toContain(`<a href="/mailbox/${ids[0]}/html">HTML</a>`);

    const bobsPage = await (await signedIn(bob)).get('/mailbox');
    expect(bobsPage.body).toContain(bobMessageId);
    expect(bobsPage.body).not.toContain(ids[0]);
    expect(bobsPage.body).not.toContain(ids[1]);
  });

  it("answers another user's message, guessed or malformed ids, and path tricks with the same 404", async () => {
    const client = await signedIn(alice);
    const attempts = [
      `/mailbox/${bobMessageId}`,
      `/mailbox/${bobMessageId}/html`,
      `/mailbox/${bobMessageId}.eml`,
      `/mailbox/${bobMessageId.toUpperCase()}`,
      `/mailbox/20000101T000000000Z-00000000-0000-4000-8000-000000000000`,
      '/mailbox/..%2Fsecrets.json',
      '/mailbox/%2e%2e%2f%2e%2e%2fsecrets',
      `/mailbox/${encodeURIComponent(path.join(outboxDir, bobMessageId))}`,
    ];
    await writeFile(path.join(dataDir, 'secrets.json'), '{"sessionSecret":"do-not-show"}', { mode: 0o600 });
    for (const url of attempts) {
      const res = await client.get(url);
      expect({ url, status: res.status }).toEqual({ url, status: 404 });
      expect(res.body).toContain('<h1>Page not found</h1>');
      expect(res.body).not.toContain(bobSecret);
      expect(res.body).not.toContain('do-not-show');
    }
  });

  it('sends a visitor who is not signed in to sign in first', async () => {
    for (const url of ['/mailbox', `/mailbox/${bobMessageId}`, `/mailbox/${bobMessageId}/html`]) {
      const res = await app.inject({ url });
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe(`/sign-in?next=${encodeURIComponent(url)}`);
    }
  });

  it('does not list a message sent to the user together with someone else', async () => {
    const shared = await writeEml(`${alice.email}, ${bob.email}`, 'To both', '<p>both</p>', new Date());
    const client = await signedIn(alice);
    expect((await client.get('/mailbox')).body).not.toContain(shared);
    expect((await client.get(`/mailbox/${shared}`)).status).toBe(404);
    await rm(path.join(outboxDir, `${shared}.eml`));
  });

  it('shows the HTML view in a sandbox where no script runs, and its links open in the whole window', async () => {
    const hostile = `<!doctype html><html><head><title>x</title></head><body>
<p id="greeting">Hello from HTML</p>
<script>document.body.setAttribute('data-ran', 'yes'); parent.document.title = 'taken over';</script>
<img src="x" onerror="document.body.setAttribute('data-ran', 'onerror')">
<form action="${origin}/sign-out" method="post"><button id="mail-form">Go</button></form>
<p><a id="mail-link" href="${origin}/account">Your account</a></p>
</body></html>`;
    const id = await writeEml(`"Alice" <${alice.email}>`, 'HTML mail', hostile, new Date(Date.now() + 60_000));

    const served = await (await signedIn(alice)).get(`/mailbox/${id}/html`);
    expect(served.headers['content-security-policy']).toContain("script-src 'none'");
    expect(served.body).toContain('srcdoc="&lt;!doctype html&gt;&lt;html&gt;&lt;head&gt;&lt;base target=&quot;_top&quot;&gt;&lt;title&gt;');

    // JavaScript on, to prove it is the sandbox and the policy, not a disabled browser, that stop the script.
    const context = await browser.newContext({ javaScriptEnabled: true });
    const page = await context.newPage();
    await page.goto(`${origin}/sign-in`);
    await page.fill('#email', alice.email);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign in")')]);

    // The first-look banner leads to the mailbox.
    await Promise.all([page.waitForNavigation(), page.click('#mailbox-link')]);
    expect(new URL(page.url()).pathname).toBe('/mailbox');
    await Promise.all([page.waitForNavigation(), page.click('a:has-text("HTML mail")')]);
    await Promise.all([page.waitForNavigation(), page.click('a:has-text("HTML")')]);
    expect(new URL(page.url()).pathname).toBe(`/mailbox/${id}/html`);

    const frameElement = await page.waitForSelector('#mail-html');
    expect(await frameElement.getAttribute('sandbox')).toBe(
      'allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation',
    );
    const frame = (await frameElement.contentFrame())!;
    await frame.waitForSelector('#greeting');
    expect(await frame.textContent('#greeting')).toBe('Hello from HTML');
    expect(await frame.getAttribute('body', 'data-ran')).toBeNull();
    expect(await page.title()).not.toBe('taken over');

    // The form inside the mail is inert (no allow-forms): the page stays, signed in.
    await frame.click('#mail-form');
    await frame.waitForSelector('#mail-link');
    expect(new URL(page.url()).pathname).toBe(`/mailbox/${id}/html`);

    // A link in the mail is followable: it opens in the whole window.
    await Promise.all([page.waitForNavigation(), frame.click('#mail-link')]);
    expect(page.url()).toBe(`${origin}/account`);
    expect(await page.textContent('h1')).toBe('Your account');
    await context.close();
    await rm(path.join(outboxDir, `${id}.eml`));
  });

  it('does not exist where email goes to a real SMTP relay', async () => {
    const handle = await connectDatabase({ databaseUrl: database.url, dataDir: '/nonexistent' });
    const server = await buildApp({ config: testConfig(database.url), database: handle });
    try {
      const client = new WebClient(server);
      expect((await client.signIn(alice.email, PASSWORD)).status).toBe(303);
      for (const url of ['/mailbox', `/mailbox/${bobMessageId}`, `/mailbox/${bobMessageId}/html`])
        expect((await client.get(url)).status).toBe(404);
      expect((await client.get('/account')).body).not.toContain('/mailbox');
    } finally {
      await server.close();
    }
  });
});
