// The pages that make the backup host work are limited per user, and a HEAD request never runs them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RATE_LIMITED_MESSAGE } from '../../src/http/rate-limit.js';
import { WebClient, type Page } from '../harness/web-client.js';
import {
  makeSnapshot,
  PUBLIC_URL,
  readyArchive as readyArchiveIn,
  requestRow,
  signedIn,
  startArchiveWorld,
  type ArchiveWorld,
} from './archive-world.js';
import { createUser } from '../harness/users.js';
import { buildTestApp } from '../harness/app.js';
import { connectDatabase } from '../../src/db/connect.js';

let world: ArchiveWorld;

beforeAll(async () => {
  world = await startArchiveWorld();
});
afterAll(async () => world?.close());
afterEach(() => {
  vi.useRealTimers();
});

const DOWNLOAD_LIMIT = 10;
const BACKUPS_LIMIT = 30;
const FORM_LIMIT = 10;
const LINK = /<a id="download-link" href="([^"]+)">/;

const readyArchive = () => readyArchiveIn(world);

/** Link directories on the backup host, and `link.issued` events in its log: both grow by one per link. */
function linksIssued(): { directories: number; events: number } {
  const events = world.dispatcher.run('events.since', { after: 0, limit: 1000 }).answer.result.events as Array<{ type: string }>;
  return { directories: readdirSync(world.dispatcher.linkRoot).length, events: events.filter((e) => e.type === 'link.issued').length };
}

/** How many times the dispatcher has run `backups.list` (its call log has one line per call). */
function backupsListCalls(): number {
  const lines = readFileSync(join(world.dispatcher.stateDir, 'dispatcher.log'), 'utf8').split('\n').filter(Boolean);
  return lines.filter((line) => (JSON.parse(line) as { action: string }).action === 'backups.list').length;
}

/** The limited answer: the ordinary HTML error page with status 429 and when to come back, nothing else. */
function expectLimitedPage(page: Page, secrets: string[] = []): void {
  expect(page.status).toBe(429);
  expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
  expect(page.body).toContain('<h1>That did not work</h1>');
  expect(page.body).toContain(`<p>${RATE_LIMITED_MESSAGE}</p>`);
  expect(page.body).toContain('Error 429.');
  const retryAfter = Number(page.headers['retry-after']);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  for (const header of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']) expect(page.headers[header]).toBeUndefined();
  for (const secret of secrets) {
    expect(page.body).not.toContain(secret);
    expect(JSON.stringify(page.headers)).not.toContain(secret);
  }
}

describe('the download page', () => {
  it('gives a customer who opens the email link and reloads the page 10 links; the 11th load within the minute gets the 429 page and no link', async () => {
    const { client, id, link } = await readyArchive();
    const archiveId = (await requestRow(world, id)).archive_id!;
    // The email link: sets the cookie and redirects, and is not counted.
    expect((await client.get(link.path)).status).toBe(303);
    for (let load = 1; load <= DOWNLOAD_LIMIT; load += 1) {
      const page = await client.get(`/downloads/${id}`);
      expect(page.status, `load ${load}`).toBe(200);
      expect(page.body).toMatch(LINK);
    }
    const before = linksIssued();
    const limited = await client.get(`/downloads/${id}`);
    expectLimitedPage(limited, [link.token, id, archiveId]);
    expect(linksIssued()).toEqual(before);

    // Opening the email link again is never refused: the token still leaves the address bar at once.
    const reopened = await client.get(link.path);
    expect(reopened.status).toBe(303);
    expect(reopened.location).toBe(`/downloads/${id}`);
    expect(String(reopened.headers['set-cookie'])).toContain('archway-download=v1.');
    expectLimitedPage(await client.get(`/downloads/${id}`), [link.token, id, archiveId]);
    expect(linksIssued()).toEqual(before);
  });

  it('counts each user on their own: a second customer at the same address still gets their link', async () => {
    const first = await readyArchive();
    await first.client.get(first.link.path);
    for (let load = 1; load <= DOWNLOAD_LIMIT; load += 1) await first.client.get(`/downloads/${first.id}`);
    expect((await first.client.get(`/downloads/${first.id}`)).status).toBe(429);

    const second = await readyArchive();
    await second.client.get(second.link.path);
    const before = linksIssued();
    const page = await second.client.get(`/downloads/${second.id}`);
    expect(page.status).toBe(200);
    expect(page.body).toMatch(LINK);
    expect(linksIssued()).toEqual({ directories: before.directories + 1, events: before.events + 1 });
  });

  it('says when to come back, and lets the customer in again once the minute has passed', async () => {
    const { client, id, link } = await readyArchive();
    await client.get(link.path);
    const start = Date.now();
    for (let load = 1; load <= DOWNLOAD_LIMIT; load += 1) await client.get(`/downloads/${id}`);
    const limited = await client.get(`/downloads/${id}`);
    expectLimitedPage(limited);
    // The window started with the first load: what is left of it, in whole seconds.
    const waited = Math.ceil((Date.now() - start) / 1000);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(60 - waited);

    // The limit's store reads Date.now(): move only the date a minute on.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
    const before = linksIssued();
    const again = await client.get(`/downloads/${id}`);
    expect(again.status).toBe(200);
    expect(again.body).toMatch(LINK);
    expect(linksIssued()).toEqual({ directories: before.directories + 1, events: before.events + 1 });
  });

  it('answers HEAD with the ordinary 404, without issuing a link, even with a valid cookie', async () => {
    const { client, id, link } = await readyArchive();
    await client.get(link.path);
    const before = linksIssued();
    const head = await client.request({ method: 'HEAD', url: `/downloads/${id}` });
    expect(head.status).toBe(404);
    expect(linksIssued()).toEqual(before);
    // The cookie still works for the page itself.
    const page = await client.get(`/downloads/${id}`);
    expect(page.status).toBe(200);
    expect(page.body).toMatch(LINK);
    expect(linksIssued()).toEqual({ directories: before.directories + 1, events: before.events + 1 });
  });
});

describe('the backups page', () => {
  it('lists the backups 30 times a minute for a user; the 31st load gets the 429 page without asking the backup host', async () => {
    const user = await createUser(world.app);
    makeSnapshot(world, user.domain!, 'daily.0', 1);
    const client = await signedIn(world, user);
    const start = backupsListCalls();
    for (let load = 1; load <= BACKUPS_LIMIT; load += 1) {
      const page = await client.get('/backups');
      expect(page.status, `load ${load}`).toBe(200);
      expect(page.body).toContain('daily.0');
    }
    expect(backupsListCalls()).toBe(start + BACKUPS_LIMIT);
    expectLimitedPage(await client.get('/backups'), [user.domain!]);
    expect(backupsListCalls()).toBe(start + BACKUPS_LIMIT);

    // Another customer is not held up.
    const other = await signedIn(world, await createUser(world.app));
    expect((await other.get('/backups')).status).toBe(200);
  });

  it('counts a user across portal instances: 15 loads on each of two use up the 30, and the next on either is refused', async () => {
    const user = await createUser(world.app);
    makeSnapshot(world, user.domain!, 'daily.0', 1);
    const first = await signedIn(world, user);
    // A second instance on the same database, as a load balancer would send the same browser to.
    const handle = await connectDatabase({ databaseUrl: world.database.url, dataDir: '/nonexistent' });
    const second = await buildTestApp(
      handle,
      world.database.url,
      { ARCHWAY_PUBLIC_URL: PUBLIC_URL },
      { backupHosts: world.app.ctx.config.backupHosts },
    );
    try {
      const elsewhere = new WebClient(second.app);
      for (const [name, value] of first.cookies) elsewhere.cookies.set(name, value);
      for (let load = 1; load <= BACKUPS_LIMIT / 2; load += 1) {
        expect((await first.get('/backups')).status, `first instance, load ${load}`).toBe(200);
        expect((await elsewhere.get('/backups')).status, `second instance, load ${load}`).toBe(200);
      }
      expectLimitedPage(await elsewhere.get('/backups'));
      expectLimitedPage(await first.get('/backups'));
    } finally {
      await second.app.close();
    }
  });

  it('answers HEAD with the ordinary 404 without listing', async () => {
    const client = await signedIn(world, await createUser(world.app));
    const before = backupsListCalls();
    const head = await client.request({ method: 'HEAD', url: '/backups' });
    expect(head.status).toBe(404);
    expect(backupsListCalls()).toBe(before);
  });

  it('uses up nothing for a visitor who is not signed in: they go to sign in every time', async () => {
    const visitor = new WebClient(world.app, { remoteAddress: '198.51.100.20' });
    for (let load = 1; load <= BACKUPS_LIMIT + 5; load += 1) {
      const page = await visitor.get('/backups');
      expect(page.status, `load ${load}`).toBe(303);
      expect(page.location).toBe('/sign-in?next=%2Fbackups');
    }
  });
});

describe('the archive forms', () => {
  it('take 10 archive requests a minute from a user; the 11th gets the 429 page without asking the backup host', async () => {
    const user = await createUser(world.app);
    makeSnapshot(world, user.domain!, 'daily.0', 1);
    const client = await signedIn(world, user);
    await client.get('/backups');
    for (let post = 1; post <= FORM_LIMIT; post += 1) {
      // A backup that is not in the list: the form comes back (and lists the backups again).
      const page = await client.post('/archives', { snapshot: 'daily.9' });
      expect(page.status, `post ${post}`).toBe(400);
    }
    const before = backupsListCalls();
    const archivesBefore = readdirSync(world.dispatcher.archiveRoot).length;
    expectLimitedPage(await client.post('/archives', { snapshot: 'daily.0' }));
    expect(backupsListCalls()).toBe(before);
    expect(readdirSync(world.dispatcher.archiveRoot)).toHaveLength(archivesBefore);
    expect(await world.app.ctx.database.db.selectFrom('archive_requests').select('id').where('user_id', '=', user.id).execute()).toEqual(
      [],
    );
  });

  it('take 10 cancels and 10 "send the link again" a minute from a user, each counted on its own', async () => {
    const client = await signedIn(world, await createUser(world.app));
    const unknown = randomUUID();
    // Every page a signed-in user sees carries the form token (in its sign-out form), the 404 page too.
    await client.get('/');
    for (const action of ['cancel', 'resend']) {
      for (let post = 1; post <= FORM_LIMIT; post += 1) {
        const page = await client.post(`/archives/${unknown}/${action}`, {});
        expect(page.status, `${action} ${post}`).toBe(404);
      }
      expectLimitedPage(await client.post(`/archives/${unknown}/${action}`, {}), [unknown]);
    }
  });
});
