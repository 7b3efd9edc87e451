// Asking for an archive, watching it being made, cancelling it: the customer's pages with a real local dispatcher.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../src/users/user.repository.js';
import { pollDueArchives } from '../../src/archives/archive-poller.js';
import { sendDueLinks } from '../../src/archives/link-mailer.js';
import { backupHostFromSettings } from '../../src/backup-host/index.js';
import { freeLoopbackPort, generateKeyPair } from '../harness/sshd.js';
import { WebClient } from '../harness/web-client.js';
import {
  askForArchive,
  deliverQueuedMail,
  makeSnapshot,
  pollUntil,
  releaseBuild,
  requestRow,
  signedIn,
  startArchiveWorld,
  type ArchiveWorld,
} from './archive-world.js';
import { createOperator, createUser, signInOperator } from '../harness/users.js';

let world: ArchiveWorld;
beforeAll(async () => {
  world = await startArchiveWorld();
});
afterAll(async () => world?.close());

const db = () => world.app.ctx.database.db;

/** A customer with two snapshots: daily.0 (newest, held "building" until released when asked) and daily.1. */
async function customerWithBackups(options: { held?: boolean } = {}): Promise<{ user: User; client: WebClient; newest: string }> {
  const user = await createUser(world.app);
  const newest = makeSnapshot(world, user.domain!, 'daily.0', 1, options);
  makeSnapshot(world, user.domain!, 'daily.1', 25);
  return { user, client: await signedIn(world, user), newest };
}

async function activeRows(userId: string) {
  return db()
    .selectFrom('archive_requests')
    .select(['id', 'state'])
    .where('user_id', '=', userId)
    .where('state', 'in', ['requested', 'building'])
    .execute();
}

describe('the backups page', () => {
  it('sends a visitor who is not signed in to sign in first, and back here after', async () => {
    const page = await new WebClient(world.app).get('/backups');
    expect(page.status).toBe(303);
    expect(page.location).toBe('/sign-in?next=%2Fbackups');
  });

  it('lists the customer snapshots newest first, the latest chosen, with a form to ask for an archive', async () => {
    const { client } = await customerWithBackups();
    const page = await client.get('/backups');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('<form method="post" action="/archives" novalidate>');
    expect(page.body).toMatch(
      /<input type="radio" name="snapshot" id="snapshot-0" value="daily.0" checked> <label for="snapshot-0">daily.0<\/label> <span class="muted">[^<]+ \(latest\)<\/span>/,
    );
    expect(page.body).toContain('<input type="radio" name="snapshot" id="snapshot-1" value="daily.1">');
    expect(page.body.indexOf('daily.0')).toBeLessThan(page.body.indexOf('daily.1'));
    expect(page.body).toContain('<button type="submit">Ask for an archive</button>');
    expect(page.body).toContain('You have not asked for an archive yet.');
    // The navigation leads customers here.
    expect(page.body).toContain('<a href="/backups">Backups</a>');
  });

  it('shows another customer none of these backups', async () => {
    const { user } = await customerWithBackups();
    const other = await createUser(world.app);
    makeSnapshot(world, other.domain!, 'weekly.3', 2);
    const page = await (await signedIn(world, other)).get('/backups');
    expect(page.body).toContain('value="weekly.3"');
    expect(page.body).not.toContain('daily.0');
    expect(page.body).not.toContain(user.domain!);
  });

  it('tells a customer with no backups yet so, without a form', async () => {
    const user = await createUser(world.app);
    const page = await (await signedIn(world, user)).get('/backups');
    expect(page.status).toBe(200);
    expect(page.body).toContain('There are no backups of your installation yet.');
    expect(page.body).not.toContain('action="/archives"');
  });

  it('has no backups page for an operator', async () => {
    const { operator, secret } = await createOperator(world.app);
    const client = new WebClient(world.app);
    await signInOperator(world.app, client, operator.email, secret);
    const page = await client.get('/backups');
    expect(page.status).toBe(404);
    expect(page.body).toContain('There is no page at this address.');
    expect((await client.get('/account')).body).not.toContain('href="/backups"');
  });
});

describe('asking for an archive', () => {
  it('starts an archive of the chosen backup and shows it being made, with a way to cancel', async () => {
    const { user, client, newest } = await customerWithBackups({ held: true });
    const id = await askForArchive(client, 'daily.0');

    const page = await client.get(`/archives/${id}`);
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('<h1>Archive of daily.0</h1>');
    expect(page.body).toContain('<dd id="archive-state">being made</dd>');
    expect(page.body).toContain('<meta http-equiv="refresh" content="5">');
    expect(page.body).toMatch(/<progress id="archive-progress"[^>]*>/);
    expect(page.body).toContain(`<form method="post" action="/archives/${id}/cancel" novalidate>`);
    // The only script is the progress file (the CSP allows no inline script); the page works without it.
    expect([...page.body.matchAll(/<script[^>]*>/g)].map((m) => m[0])).toEqual(['<script src="/static/archive-progress.js" defer>']);

    const row = await requestRow(world, id);
    expect(row).toMatchObject({
      user_id: user.id,
      customer: user.domain,
      snapshot: 'daily.0',
      state: 'building',
      requested_ip: '198.51.100.7',
    });
    expect(row.archive_id).toMatch(/^[0-9a-f]{32}$/);
    const audit = await db()
      .selectFrom('audit_log')
      .selectAll()
      .where('actor', '=', user.id)
      .where('action', '=', 'archive.requested')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]?.detail).toMatchObject({ requestId: id, snapshot: 'daily.0', archiveId: row.archive_id });

    // The poller records the progress the backup host reports while it is still building.
    world.clock.advance(5_000);
    expect(await pollDueArchives(world.app.ctx, { now: () => world.clock.now() })).toEqual(['progress']);
    expect((await requestRow(world, id)).state).toBe('building');

    releaseBuild(newest);
    await pollUntil(world, id, ['ready']);
  });

  it('shows size, SHA-256 and "send the link again" once the archive is ready, and stops refreshing', async () => {
    const { user, client } = await customerWithBackups();
    const id = await askForArchive(client, 'daily.1');
    await pollUntil(world, id, ['ready']);
    const row = await requestRow(world, id);
    const file = join(world.dispatcher.archiveRoot, `${row.archive_id}.tar`);
    const bytes = readFileSync(file);
    expect(row).toMatchObject({
      state: 'ready',
      size_bytes: String(bytes.length),
      download_file_name: `${user.domain}-daily.1-${row.archive_id!.slice(0, 8)}.tar`,
    });
    expect(row.notify_due_at).not.toBeNull();

    const page = await client.get(`/archives/${id}`);
    expect(page.body).toContain('<dd id="archive-state">ready to download</dd>');
    expect(page.body).toContain(`(${bytes.length} bytes)`);
    expect(page.body).toContain(`<code id="archive-sha256">${createHash('sha256').update(bytes).digest('hex')}</code>`);
    expect(page.body).toContain('We are sending the download link to your email address.');
    expect(page.body).toContain(`<form method="post" action="/archives/${id}/resend" novalidate>`);
    expect(page.body).not.toContain('http-equiv="refresh"');
    expect(page.body).not.toContain('/cancel"');

    // And the backups page lists it with its state.
    const backups = await client.get('/backups');
    expect(backups.body).toMatch(new RegExp(`<a href="/archives/${id}">[^<]+</a></td><td>daily.1</td><td>ready to download</td>`));
  });

  it('refuses a second archive while one is being made, and says which one', async () => {
    const { user, client, newest } = await customerWithBackups({ held: true });
    const id = await askForArchive(client, 'daily.0');
    await client.get('/backups');
    const again = await client.post('/archives', { snapshot: 'daily.1' });
    expect(again.status).toBe(409);
    expect(again.body).toContain('An archive of your backups is already being made.');
    expect(again.body).toContain(`<a href="/archives/${id}">See the archive being made</a>`);
    expect(await activeRows(user.id)).toEqual([{ id, state: 'building' }]);
    releaseBuild(newest);
    await pollUntil(world, id, ['ready']);
  });

  it('passes on the backup host refusal and leaves nothing blocking the next request', async () => {
    const { user, client, newest } = await customerWithBackups({ held: true });
    // Someone else (another portal instance, an operator) already has a build running for this customer.
    const elsewhere = world.dispatcher.run('archive.create', { customer: user.domain, snapshot: 'daily.0' });
    expect(elsewhere.code).toBe(0);
    await client.get('/backups');
    const refused = await client.post('/archives', { snapshot: 'daily.1' });
    expect(refused.status).toBe(409);
    expect(refused.body).toContain('An archive for this customer is already being built; please wait until it is ready.');
    expect(await activeRows(user.id)).toEqual([]);
    const failed = await db().selectFrom('archive_requests').selectAll().where('user_id', '=', user.id).execute();
    expect(failed).toMatchObject([
      {
        state: 'failed',
        failure_reason: 'An archive for this customer is already being built; please wait until it is ready.',
        archive_id: null,
      },
    ]);
    expect(failed[0]?.finished_at).not.toBeNull();

    // Once that build is gone, asking works again.
    world.dispatcher.run('archive.cancel', { customer: user.domain, archiveId: elsewhere.answer.result.archiveId });
    releaseBuild(newest);
    const id = await askForArchive(client, 'daily.1');
    await pollUntil(world, id, ['ready']);
  });

  it('re-shows the form with a message for a snapshot field that is missing, malformed or oversized', async () => {
    const { user, client } = await customerWithBackups();
    for (const form of [
      {} as Record<string, string>,
      { snapshot: '' },
      { snapshot: '../daily.0' },
      { snapshot: '-rf' },
      { snapshot: 'daily.0\nx' },
      { snapshot: 'd'.repeat(129) },
      { snapshot: 'd'.repeat(5000) },
    ]) {
      await client.get('/backups');
      const page = await client.post('/archives', form);
      expect(page.status, JSON.stringify(form).slice(0, 40)).toBe(400);
      expect(page.body).toContain('Choose one of your backups from the list.');
      // The list is shown again, the latest chosen.
      expect(page.body).toContain('value="daily.0" checked');
    }
    await client.get('/backups');
    const twice = await client.request({
      method: 'POST',
      url: '/archives',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `_csrf=${encodeURIComponent(/name="_csrf" value="([^"]+)"/.exec(client.lastPage!.body)![1]!)}&snapshot=daily.0&snapshot=daily.1`,
    });
    expect(twice.status).toBe(400);
    expect(await db().selectFrom('archive_requests').selectAll().where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('refuses a well-formed snapshot that is not in the customer list, such as another customer one', async () => {
    const { user, client } = await customerWithBackups();
    const other = await createUser(world.app);
    makeSnapshot(world, other.domain!, 'only-theirs', 1);
    await client.get('/backups');
    const page = await client.post('/archives', { snapshot: 'only-theirs' });
    expect(page.status).toBe(400);
    expect(page.body).toContain('That backup is not in your list (any more). Choose one of the backups shown.');
    expect(await db().selectFrom('archive_requests').selectAll().where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('refuses a form without its CSRF token and starts nothing', async () => {
    const { user, client } = await customerWithBackups();
    const page = await client.request({
      method: 'POST',
      url: '/archives',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'snapshot=daily.0',
    });
    expect(page.status).toBe(403);
    expect(page.body).toContain('This form has expired or did not come from this site.');
    expect(await db().selectFrom('archive_requests').selectAll().where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('says "try again later" when the backup host fails while starting, and leaves nothing blocking', async () => {
    const { user, client } = await customerWithBackups();
    await client.get('/backups');
    // The archive store vanishes between the list and the build (a disk unmounted): the dispatcher fails internally.
    const moved = `${world.dispatcher.archiveRoot}.away`;
    renameSync(world.dispatcher.archiveRoot, moved);
    let page;
    try {
      page = await client.post('/archives', { snapshot: 'daily.0' });
    } finally {
      renameSync(moved, world.dispatcher.archiveRoot);
    }
    expect(page.status).toBe(503);
    expect(page.body).toContain('The backup service is not available right now. Nothing was started; please try again in a few minutes.');
    expect(page.body).not.toMatch(/archiveRoot|ENOENT|statfs|\/tmp\//);
    expect(await activeRows(user.id)).toEqual([]);
    await client.get('/backups');
    const id = await askForArchive(client, 'daily.0');
    await pollUntil(world, id, ['ready']);
  });
});

describe('the status poller', () => {
  it('backs off while the backup host cannot answer, and carries on once it can', async () => {
    const { client, newest } = await customerWithBackups({ held: true });
    const id = await askForArchive(client, 'daily.0');
    // The same portal, its backup host gone from the network for a while.
    const key = await generateKeyPair(join(world.dispatcher.dir, 'keys'), 'poller');
    const unreachable = backupHostFromSettings({
      host: '127.0.0.1',
      port: await freeLoopbackPort(),
      user: 'archway',
      privateKeyPath: key.privateKeyPath,
      hostKeyFingerprint: key.fingerprint,
    });
    const waits: number[] = [];
    for (let i = 0; i < 3; i++) {
      world.clock.advance(10 * 60_000);
      expect(await pollDueArchives(world.app.ctx, { now: () => world.clock.now(), host: unreachable })).toEqual(['error']);
      waits.push((await requestRow(world, id)).next_poll_at.getTime() - world.clock.now().getTime());
    }
    // Each failed call pushes the next one further out.
    expect(waits[1]!).toBeGreaterThan(waits[0]!);
    expect(waits[2]!).toBeGreaterThan(waits[1]!);
    expect(await requestRow(world, id)).toMatchObject({ state: 'building', poll_failures: 3 });
    expect(world.logText()).toContain('archive status not available; will ask again later');
    releaseBuild(newest);
    await pollUntil(world, id, ['ready']);
    expect((await requestRow(world, id)).poll_failures).toBe(0);
  });
});

describe('one archive page', () => {
  it('answers the same 404 for another customer request, a malformed id and an unknown one, on every route', async () => {
    const { client: owner } = await customerWithBackups();
    const id = await askForArchive(owner, 'daily.1');
    const stranger = await signedIn(world, await createUser(world.app));
    // The page differs only in its request reference and form token.
    const plain = (html: string) => html.replace(/<code>[^<]+<\/code>/, '').replace(/name="_csrf" value="[^"]+"/, '');
    const notFound = plain((await stranger.get('/archives/00000000-0000-4000-8000-000000000000')).body);
    for (const target of [id, 'not-a-uuid', '00000000-0000-4000-8000-000000000000', `${id.toUpperCase()}`, `${id}x`]) {
      const page = await stranger.get(`/archives/${target}`);
      expect(page.status, target).toBe(404);
      expect(plain(page.body)).toBe(notFound);
      for (const action of ['cancel', 'resend']) {
        await stranger.get('/backups');
        const post = await stranger.post(`/archives/${target}/${action}`, {});
        expect(post.status, `${action} ${target}`).toBe(404);
      }
      expect((await stranger.get(`/downloads/${target}`)).status).toBe(404);
    }
    expect((await requestRow(world, id)).state).not.toBe('cancelled');
    await pollUntil(world, id, ['ready']);
  });

  it('cancels an archive being made, and then lets the customer ask for another', async () => {
    const { user, client, newest } = await customerWithBackups({ held: true });
    const id = await askForArchive(client, 'daily.0');
    const archiveId = (await requestRow(world, id)).archive_id!;
    await client.get(`/archives/${id}`);
    const cancelled = await client.post(`/archives/${id}/cancel`, {});
    expect(cancelled.status).toBe(303);
    expect(cancelled.location).toBe(`/archives/${id}`);
    const page = await client.get(`/archives/${id}`);
    expect(page.body).toContain('<dd id="archive-state">cancelled</dd>');
    expect(page.body).not.toContain('http-equiv="refresh"');
    expect(world.dispatcher.run('archive.status', { customer: user.domain, archiveId }).answer.result.state).toBe('cancelled');
    expect(
      await db().selectFrom('audit_log').select('action').where('actor', '=', user.id).where('action', '=', 'archive.cancelled').execute(),
    ).toHaveLength(1);

    // Cancelling again finds nothing to cancel.
    const again = await client.post(`/archives/${id}/cancel`, {});
    expect(again.status).toBe(409);
    expect(again.body).toContain('This archive is no longer being made, so there is nothing to cancel.');

    releaseBuild(newest);
    const next = await askForArchive(client, 'daily.1');
    await pollUntil(world, next, ['ready']);
  });

  it('keeps a cancel made while the backup host is still starting the build, and stops that build', async () => {
    const { user, client } = await customerWithBackups();
    const otherTab = await signedIn(world, user);
    // archive.create answers only after its size walk; a `find` held until the cancel is in holds it open.
    const slowFind = join(world.dispatcher.dir, 'slow-find');
    const holdFind = join(world.dispatcher.dir, 'hold-find');
    writeFileSync(holdFind, '');
    writeFileSync(slowFind, `#!/bin/sh\nwhile [ -e '${holdFind}' ]; do sleep 0.05; done\nexec find "$@"\n`, { mode: 0o755 });
    const config = readFileSync(world.dispatcher.configPath, 'utf8');
    writeFileSync(world.dispatcher.configPath, JSON.stringify({ ...JSON.parse(config), findPath: slowFind }), { mode: 0o600 });
    let id: string;
    try {
      await client.get('/backups');
      const asking = client.post('/archives', { snapshot: 'daily.1' });
      await expect.poll(async () => (await activeRows(user.id)).length, { timeout: 20_000 }).toBe(1);
      id = (await activeRows(user.id))[0]!.id;
      await otherTab.get(`/archives/${id}`);
      expect((await otherTab.post(`/archives/${id}/cancel`, {})).status).toBe(303);
      rmSync(holdFind);
      expect((await asking).location).toBe(`/archives/${id}`);
    } finally {
      rmSync(holdFind, { force: true });
      writeFileSync(world.dispatcher.configPath, config, { mode: 0o600 });
    }
    const row = await requestRow(world, id);
    expect(row.state).toBe('cancelled');
    // The build the backup host had started is cancelled there too, and nothing is ever sent.
    expect(row.archive_id).not.toBeNull();
    expect(world.dispatcher.run('archive.status', { customer: user.domain, archiveId: row.archive_id }).answer.result.state).toBe(
      'cancelled',
    );
    await pollDueArchives(world.app.ctx, { now: () => world.clock.now() });
    await sendDueLinks(world.app.ctx, { now: () => world.clock.now() });
    expect((await requestRow(world, id)).state).toBe('cancelled');
    expect((await deliverQueuedMail(world)).filter((m) => m.to && !Array.isArray(m.to) && m.to.value[0]?.address === user.email)).toEqual(
      [],
    );
    expect((await client.get(`/archives/${id}`)).body).toContain('<dd id="archive-state">cancelled</dd>');
  });

  it('records a failed build with its reason and emails the customer, without a link', async () => {
    const { user, client } = await customerWithBackups({ held: true });
    const id = await askForArchive(client, 'daily.0');
    const archiveId = (await requestRow(world, id)).archive_id!;
    // Cancelled on the backup host itself (an operator there): the portal learns it by polling.
    world.dispatcher.run('archive.cancel', { customer: user.domain, archiveId });
    await pollUntil(world, id, ['cancelled']);
    const row = await requestRow(world, id);
    expect(row.failure_reason).toBe('The archive was cancelled on the backup host.');
    expect(row.finished_at).not.toBeNull();
    const page = await client.get(`/archives/${id}`);
    expect(page.body).toContain('<dd id="failure-reason">The archive was cancelled on the backup host.</dd>');

    const mail = (await deliverQueuedMail(world)).find((m) => m.to && !Array.isArray(m.to) && m.to.value[0]?.address === user.email);
    expect(mail?.subject).toBe('Your Archway archive could not be made');
    expect(mail?.to).toMatchObject({ value: [{ address: user.email }] });
    expect(mail?.text).toContain('The archive was cancelled on the backup host.');
    expect(mail?.text).toContain('https://portal.example.net/backups');
    expect(mail?.text).not.toContain('/downloads/');
  });
});

describe('without a working backup host', () => {
  it('says plainly that archives cannot be requested when no backup host is configured', async () => {
    const bare = await startArchiveWorld({ backupHost: null });
    try {
      const user = await createUser(bare.app);
      const client = await signedIn(bare, user);
      const page = await client.get('/backups');
      expect(page.status).toBe(200);
      expect(page.body).toContain('Archives cannot be requested on this portal: no backup host is set up yet.');
      expect(page.body).not.toContain('action="/archives"');
      const post = await client.post('/archives', { snapshot: 'daily.0' });
      expect(post.status).toBe(503);
      expect(await bare.app.ctx.database.db.selectFrom('archive_requests').selectAll().execute()).toEqual([]);
      expect(await pollDueArchives(bare.app.ctx)).toEqual([]);
    } finally {
      await bare.close();
    }
  });

  it('shows a friendly message when the backup host cannot be reached, with the detail only in the log', async () => {
    const key = await generateKeyPair(join(world.dispatcher.dir, 'keys'), 'portal');
    const port = await freeLoopbackPort();
    const down = await startArchiveWorld({
      backupHost: { host: '127.0.0.1', port, user: 'archway', privateKeyPath: key.privateKeyPath, hostKeyFingerprint: key.fingerprint },
    });
    try {
      const user = await createUser(down.app);
      const client = await signedIn(down, user);
      const page = await client.get('/backups');
      expect(page.status).toBe(200);
      expect(page.body).toContain(
        'The backup service is not available right now, so your backups cannot be listed. Please try again in a few minutes.',
      );
      expect(page.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|ssh/i);
      expect(down.logText()).toContain('backups list not available');
      expect(down.logText()).toMatch(/ECONNREFUSED|refused|connect/i);

      const post = await client.post('/archives', { snapshot: 'daily.0' });
      expect(post.status).toBe(503);
      expect(post.body).toContain('Nothing was started; please try again in a few minutes.');
      expect(
        await down.app.ctx.database.db.selectFrom('archive_requests').selectAll().where('state', 'in', ['requested', 'building']).execute(),
      ).toEqual([]);
    } finally {
      await down.close();
    }
  });
});
