// The link email and the download page: a fresh token per email, moved out of the URL into a sealed cookie, never stored.
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendDueLinks } from '../../src/archives/link-mailer.js';
import { hashToken, newToken } from '../../src/protocol/index.js';
import { WebClient, type Page } from '../harness/web-client.js';
import {
  askForArchive,
  downloadLinkIn,
  everyStoredText,
  makeSnapshot,
  pollUntil,
  requestRow,
  sendLinks,
  signedIn,
  readyArchive as readyArchiveIn,
  startArchiveWorld,
  type ReadyArchive,
  type ArchiveWorld,
} from './archive-world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: ArchiveWorld;
/** Every token an email carried in this file, to prove at the end that none was stored or logged. */
const tokensSeen: string[] = [];

beforeAll(async () => {
  world = await startArchiveWorld();
});
afterAll(async () => world?.close());

const db = () => world.app.ctx.database.db;
const COOKIE = 'archway-download';

/** A ready archive whose emailed token is remembered, to be looked for in the database and logs later. */
async function readyArchive(w: ArchiveWorld = world): Promise<ReadyArchive> {
  const ready = await readyArchiveIn(w);
  tokensSeen.push(ready.link.token);
  return ready;
}

/** The client's cookie header with the download cookie replaced by `value` (the session stays). */
function withDownloadCookie(client: WebClient, value: string): Record<string, string> {
  const others = [...client.cookies].filter(([name]) => name !== COOKIE).map(([name, v]) => `${name}=${v}`);
  return { cookie: [...others, `${COOKIE}=${value}`].join('; ') };
}

function setCookieOf(page: Page, name = COOKIE): string {
  const header = page.headers['set-cookie'];
  const all = Array.isArray(header) ? header : header === undefined ? [] : [header];
  const found = all.find((c) => c.startsWith(`${name}=`));
  if (found === undefined) throw new Error(`no ${name} cookie set`);
  return found;
}

/** What the dispatcher recorded for one archive, by event type. */
function dispatcherEvents(archiveId: string): string[] {
  const events = world.dispatcher.run('events.since', { after: 0, limit: 1000 }).answer.result.events as Array<{
    type: string;
    archiveId: string;
  }>;
  return events.filter((e) => e.archiveId === archiveId).map((e) => e.type);
}

describe('the link email', () => {
  it('goes to the owner once the archive is ready, links to the portal download page, and is not queued in the database', async () => {
    const { user, id, link } = await readyArchive();
    const message = world.sink.messages.at(-1)!;
    expect(message.subject).toBe('Your Archway archive is ready');
    expect(message.to).toMatchObject({ value: [{ address: user.email }] });
    expect(link.path).toBe(`/downloads/${id}?t=${link.token}`);
    const row = await requestRow(world, id);
    expect(message.text).toContain(row.sha256!);
    expect(message.text).toContain('works for 60 seconds, from your address only');
    expect(message.html).toContain(`href="https://portal.example.net/downloads/${id}?t=${link.token}"`);
    expect(row).toMatchObject({ notify_due_at: null, notify_attempts: 1, last_notify_error: null });
    expect(row.notified_at).not.toBeNull();
    // The backup host holds only the token's hash.
    expect(readFileSync(join(world.dispatcher.stateDir, 'tokens', `${row.archive_id}.sha256`), 'utf8').trim()).toBe(hashToken(link.token));
    expect(await db().selectFrom('mail_queue').select('template').where('recipient', '=', user.email).execute()).toEqual([]);
    expect(
      await db()
        .selectFrom('audit_log')
        .select('action')
        .where('subject', '=', user.id)
        .where('action', '=', 'archive.link_sent')
        .execute(),
    ).toHaveLength(1);
    // Nothing more is due.
    expect(await sendLinks(world)).toEqual([]);
  });
});

describe('several portal instances', () => {
  it('send one email per due link even when their link mailers run at the same moment', async () => {
    const user = await createUser(world.app);
    makeSnapshot(world, user.domain!, 'daily.0', 1);
    const client = await signedIn(world, user);
    const id = await askForArchive(client, 'daily.0');
    await pollUntil(world, id, ['ready']);
    const before = world.sink.messages.length;
    const now = () => world.clock.now();
    const outcomes = await Promise.all([
      sendDueLinks(world.app.ctx, { now }),
      sendDueLinks(world.app.ctx, { now }),
      sendDueLinks(world.app.ctx, { now }),
    ]);
    expect(outcomes.flat()).toEqual(['sent']);
    expect(world.sink.messages.length - before).toBe(1);
    tokensSeen.push(downloadLinkIn(world.sink.messages.at(-1)!).token);
    const archiveId = (await requestRow(world, id)).archive_id!;
    expect(dispatcherEvents(archiveId).filter((t) => t === 'archive.armed')).toHaveLength(1);
  });
});

describe('the download page', () => {
  it('moves the token into a cookie for that page only, then gives the owner a 60-second link for their address', async () => {
    const { user, client, id, link } = await readyArchive();
    const opened = await client.get(link.path);
    expect(opened.status).toBe(303);
    expect(opened.location).toBe(`/downloads/${id}`);
    expect(opened.headers['cache-control']).toBe('no-store');
    const cookie = setCookieOf(opened);
    expect(cookie).toContain(`Path=/downloads/${id}`);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Lax');
    expect(cookie).toContain('Max-Age=900');
    expect(cookie).not.toContain(link.token);

    const page = await client.get(`/downloads/${id}`);
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    const url = /<a id="download-link" href="([^"]+)">/.exec(page.body)?.[1]?.replace(/&amp;/g, '&');
    const row = await requestRow(world, id);
    expect(url).toMatch(
      new RegExp(
        `^https://dl\\.example\\.net/dl/[0-9a-f]{32}/${row.download_file_name!.replace(/\./g, '\\.')}\\?md5=[A-Za-z0-9_-]{22}&expires=\\d+$`,
      ),
    );
    expect(page.body).toContain('<strong>60 seconds</strong>');
    expect(page.body).toContain('<strong>only from your address 198.51.100.7</strong>');
    expect(page.body).toContain('reload this page for a fresh one');
    expect(page.body).toContain('<script src="/static/download-countdown.js" defer></script>');
    expect(page.body).not.toContain(link.token);
    // The link on the backup host points at this archive.
    const linkDir = join(world.dispatcher.linkRoot, /\/dl\/([0-9a-f]{32})\//.exec(url!)![1]!);
    expect(readlinkSync(join(linkDir, row.download_file_name!))).toBe(join(world.dispatcher.archiveRoot, `${row.archive_id}.tar`));
    const audit = await db()
      .selectFrom('audit_log')
      .selectAll()
      .where('actor', '=', user.id)
      .where('action', '=', 'archive.link_issued')
      .execute();
    expect(audit).toMatchObject([{ ip: '198.51.100.7', detail: { requestId: id, archiveId: row.archive_id } }]);

    // A reload gives a fresh link.
    const again = await client.get(`/downloads/${id}`);
    const second = /<a id="download-link" href="([^"]+)">/.exec(again.body)?.[1];
    expect(second).toBeDefined();
    expect(second).not.toBe(/<a id="download-link" href="([^"]+)">/.exec(page.body)?.[1]);
  });

  it('takes a visitor who is not signed in through sign-in and back, the token never in a URL after the first', async () => {
    const { user, id, link } = await readyArchive();
    const browser = new WebClient(world.app, { remoteAddress: '198.51.100.8' });
    const locations: string[] = [];
    const opened = await browser.get(link.path);
    locations.push(opened.location!);
    expect(opened.location).toBe(`/downloads/${id}`);
    const toSignIn = await browser.get(opened.location!);
    locations.push(toSignIn.location!);
    expect(toSignIn.status).toBe(303);
    expect(toSignIn.location).toBe(`/sign-in?next=${encodeURIComponent(`/downloads/${id}`)}`);
    const form = await browser.get(toSignIn.location!);
    expect(form.body).toContain(`<input type="hidden" name="next" value="/downloads/${id}">`);
    const signedInAnswer = await browser.post('/sign-in', { email: user.email, password: PASSWORD, next: `/downloads/${id}` });
    locations.push(signedInAnswer.location!);
    expect(signedInAnswer.location).toBe(`/downloads/${id}`);
    const page = await browser.get(signedInAnswer.location!);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<strong>only from your address 198.51.100.8</strong>');
    for (const location of locations) expect(location).not.toContain(link.token);
    // The session row knows nothing of the token.
    expect(JSON.stringify(await db().selectFrom('sessions').selectAll().execute())).not.toContain(link.token);
  });

  it('shows another customer who opens the owner link the same 404 as an unknown page, and gives no link', async () => {
    const { id, link } = await readyArchive();
    const stranger = await signedIn(world, await createUser(world.app));
    const opened = await stranger.get(link.path);
    expect(opened.status).toBe(303);
    const page = await stranger.get(`/downloads/${id}`);
    expect(page.status).toBe(404);
    expect(page.body).toContain('There is no page at this address.');
    expect(page.body).not.toContain('download-link');
    const issued = await db().selectFrom('audit_log').select('detail').where('action', '=', 'archive.link_issued').execute();
    expect(issued.filter((row) => row.detail.requestId === id)).toEqual([]);
  });

  it('answers 404 to a token sent for a malformed request id', async () => {
    const { client, link } = await readyArchive();
    for (const target of ['nope', '../archives', `${'0'.repeat(8)}-0000-4000-8000-00000000000`]) {
      const page = await client.get(`/downloads/${target}?t=${link.token}`);
      expect(page.status, target).toBe(404);
      expect(String(page.headers['set-cookie'] ?? '')).not.toContain(COOKIE);
    }
  });

  it('refuses a wrong token, clears it, and offers to send the link again', async () => {
    const { client, id } = await readyArchive();
    const wrong = newToken();
    await client.get(`/downloads/${id}?t=${wrong}`);
    const page = await client.get(`/downloads/${id}`);
    expect(page.status).toBe(410);
    // The archive was emailed, so a token the host does not know is one a newer email replaced.
    expect(page.body).toContain('A newer email replaced this link');
    expect(page.body).toContain(`<form method="post" action="/archives/${id}/resend" novalidate>`);
    expect(setCookieOf(page)).toMatch(/^archway-download=;.*Expires=Thu, 01 Jan 1970/);
    expect(client.cookies.has(COOKIE)).toBe(false);
  });

  it('treats a token that is not a token at all as no link, without setting a cookie', async () => {
    const { client, id } = await readyArchive();
    const opened = await client.get(`/downloads/${id}?t=short`);
    expect(opened.status).toBe(303);
    expect(opened.location).toBe(`/downloads/${id}`);
    expect(String(opened.headers['set-cookie'] ?? '')).not.toContain(COOKIE);
    const page = await client.get(`/downloads/${id}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('This browser has no valid download link for this archive.');
  });

  it('after "send the link again" only the newest email link works, and asking too soon is refused with a clear message', async () => {
    const { client, id, link: first } = await readyArchive();
    await client.get(`/archives/${id}`);
    const tooSoon = await client.post(`/archives/${id}/resend`, {});
    expect(tooSoon.status).toBe(429);
    expect(tooSoon.body).toContain('We sent you a link less than a minute ago.');

    world.clock.advance(61_000);
    await client.get(`/archives/${id}`);
    const resent = await client.post(`/archives/${id}/resend`, {});
    expect(resent.status).toBe(303);
    const after = await client.get(resent.location!);
    expect(after.body).toContain('A new download link is on its way to your email address. Only that newest link works.');
    const mails = await sendLinks(world);
    expect(mails).toHaveLength(1);
    const second = downloadLinkIn(mails[0]!);
    tokensSeen.push(second.token);
    expect(second.token).not.toBe(first.token);

    await client.get(first.path);
    const old = await client.get(`/downloads/${id}`);
    expect(old.status).toBe(410);
    const sentAt = (await requestRow(world, id)).notified_at!;
    expect(old.body).toContain(
      `We sent a newer email about this archive (at ${sentAt.toISOString().slice(0, 16).replace('T', ' ')} UTC), and its link replaced this one.`,
    );

    await client.get(second.path);
    const fresh = await client.get(`/downloads/${id}`);
    expect(fresh.status).toBe(200);
    expect(fresh.body).toContain('id="download-link"');
    const archiveId = (await requestRow(world, id)).archive_id!;
    // One hash per email, and the replacement armed once the newest link had served its page.
    expect(dispatcherEvents(archiveId).filter((t) => t === 'archive.armed')).toHaveLength(3);
  });

  it('lets the emailed link serve one page: replayed later (from browser history) it gives no link, while the browser that used it still can', async () => {
    const { user, client, id, link } = await readyArchive();
    await client.get(link.path);
    const first = await client.get(`/downloads/${id}`);
    expect(first.status).toBe(200);
    expect(first.body).toContain('id="download-link"');
    const reload = await client.get(`/downloads/${id}`);
    expect(reload.status).toBe(200);
    expect(reload.body).toContain('id="download-link"');

    const later = await signedIn(world, user);
    await later.get(link.path);
    const replay = await later.get(`/downloads/${id}`);
    expect(replay.status).toBe(410);
    expect(replay.body).not.toContain('id="download-link"');
    expect((await client.get(`/downloads/${id}`)).body).toContain('id="download-link"');
  });

  it('treats a tampered cookie, one copied from another archive, and an expired one as no cookie', async () => {
    const a = await readyArchive();
    const b = await readyArchive();
    await a.client.get(a.link.path);
    const sealed = a.client.cookies.get(COOKIE)!;
    const noLink = 'This browser has no valid download link for this archive.';

    const flipped = sealed.slice(0, -3) + (sealed.at(-3) === 'A' ? 'B' : 'A') + sealed.slice(-2);
    for (const value of [flipped, `${sealed}x`, 'v1.', a.link.token, 'v2.' + sealed.slice(3)]) {
      const page = await a.client.get(`/downloads/${a.id}`, withDownloadCookie(a.client, value));
      expect(page.status).toBe(200);
      expect(page.body).toContain(noLink);
      expect(page.body).not.toContain('download-link');
    }

    // A's cookie on B's page: both belong to the same person here, and it still does not open.
    await b.client.get(`/archives/${b.id}`);
    const copied = await b.client.get(`/downloads/${b.id}`, withDownloadCookie(b.client, sealed));
    expect(copied.body).toContain(noLink);

    // Fifteen minutes later the cookie has run out, even if the browser kept it.
    world.clock.advance(15 * 60_000 + 1_000);
    const late = await a.client.get(`/downloads/${a.id}`, withDownloadCookie(a.client, sealed));
    expect(late.status).toBe(200);
    expect(late.body).toContain(noLink);
  });

  it('says an archive is not ready yet while it is being made', async () => {
    const user = await createUser(world.app);
    makeSnapshot(world, user.domain!, 'daily.0', 1, { held: true });
    const client = await signedIn(world, user);
    const id = await askForArchive(client, 'daily.0');
    const page = await client.get(`/downloads/${id}`);
    expect(page.status).toBe(409);
    expect(page.body).toContain('We are still making this archive.');
    await client.get(`/archives/${id}`);
    await client.post(`/archives/${id}/cancel`, {});
  });
});

describe('behind the TLS proxy', () => {
  it('names the cookie __Secure-, marks it Secure, and binds the link to the forwarded client address', async () => {
    const proxied = await startArchiveWorld({ env: { ARCHWAY_REQUIRE_HTTPS: 'true', ARCHWAY_TRUST_PROXY: '10.0.0.2' } });
    try {
      const user = await createUser(proxied.app);
      makeSnapshot(proxied, user.domain!, 'daily.0', 1);
      const client = new WebClient(proxied.app, {
        remoteAddress: '10.0.0.2',
        headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '2001:db8::7' },
      });
      expect((await client.signIn(user.email, PASSWORD)).status).toBe(303);
      const id = await askForArchive(client, 'daily.0');
      await pollUntil(proxied, id, ['ready']);
      const link = downloadLinkIn((await sendLinks(proxied))[0]!);
      tokensSeen.push(link.token);
      const opened = await client.get(link.path);
      const cookie = setCookieOf(opened, '__Secure-archway-download');
      expect(cookie).toMatch(
        new RegExp(`^__Secure-archway-download=v1\\.[A-Za-z0-9_-]+; Max-Age=900; Path=/downloads/${id}; HttpOnly; Secure; SameSite=Lax$`),
      );
      const page = await client.get(`/downloads/${id}`);
      expect(page.status).toBe(200);
      expect(page.body).toContain('<strong>only from your address 2001:db8::7</strong>');
      expect(page.headers['referrer-policy']).toBe('no-referrer');
    } finally {
      await proxied.close();
    }
  });
});

describe('when the mail server is down', () => {
  it('retries with a new token, records the failure without it, and the email that finally goes out works', async () => {
    const down = await startArchiveWorld({ smtpUp: false });
    try {
      const user = await createUser(down.app);
      makeSnapshot(down, user.domain!, 'daily.0', 1);
      const client = await signedIn(down, user);
      const id = await askForArchive(client, 'daily.0');
      await pollUntil(down, id, ['ready']);
      expect(await sendLinks(down)).toEqual([]);
      const failed = await requestRow(down, id);
      expect(failed.notify_attempts).toBe(1);
      expect(failed.last_notify_error).toMatch(/^mail: .*ECONNREFUSED/);
      expect(failed.last_notify_error).not.toMatch(/[A-Za-z0-9_-]{43}/);
      expect(failed.notify_due_at!.getTime() - down.clock.now().getTime()).toBeGreaterThan(50_000);
      const page = await client.get(`/archives/${id}`);
      expect(page.body).toContain('The last attempt did not get through; we keep trying, each time with a new link.');
      expect(down.logText()).toContain('archive link email not sent; will retry with a new link');

      await down.sink.start();
      down.clock.advance(61_000);
      const [mail] = await sendLinks(down);
      expect(mail).toBeDefined();
      const link = downloadLinkIn(mail!);
      const row = await requestRow(down, id);
      expect(row).toMatchObject({ notify_attempts: 2, last_notify_error: null, notify_due_at: null });
      const armed = (
        down.dispatcher.run('events.since', { after: 0, limit: 1000 }).answer.result.events as Array<{ type: string; archiveId: string }>
      ).filter((e) => e.archiveId === row.archive_id && e.type === 'archive.armed');
      expect(armed).toHaveLength(2);
      await client.get(link.path);
      expect((await client.get(`/downloads/${id}`)).body).toContain('id="download-link"');
      for (const text of [await everyStoredText(down), down.logText()]) {
        expect(text).not.toContain(link.token);
        expect(text).not.toContain(Buffer.from(link.token).toString('hex'));
      }
    } finally {
      await down.close();
    }
  });
});

describe('what is left behind', () => {
  it('never stored or logged any emailed token: not in any table nor in the log lines', async () => {
    expect(tokensSeen.length).toBeGreaterThanOrEqual(8);
    const stored = await everyStoredText(world);
    expect(stored).toContain('archive.link_issued');
    const logged = world.logText();
    expect(logged).toContain('/downloads/');
    for (const token of tokensSeen) {
      expect(stored).not.toContain(token);
      expect(stored).not.toContain(Buffer.from(token).toString('hex'));
      expect(logged).not.toContain(token);
    }
    expect(existsSync(world.dispatcher.stateDir)).toBe(true);
  });
});
