// The operator's request log: who asked for which archive, from where, and what the backup host recorded.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../src/users/user.repository.js';
import type { ArchiveRequestState } from '../../src/archives/archives.tables.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { createOperator, createUser, PASSWORD, signInOperator } from '../harness/users.js';

let subject: PortalWorld;
let desk: WebClient;
const MINUTE = 60_000;

beforeAll(async () => {
  subject = await startPortalWorld();
  const { operator, secret } = await createOperator(subject.app);
  desk = new WebClient(subject.app);
  await signInOperator(subject.app, desk, operator.email, secret);
});

afterAll(async () => {
  await subject.close();
});

const db = () => subject.app.ctx.database.db;
const archiveId = () => randomBytes(16).toString('hex');
let minutesAgo = 100_000;

async function customerWith(email: string, domain: string): Promise<User> {
  const user = await createUser(subject.app, { email });
  await db().updateTable('users').set({ domain }).where('id', '=', user.id).execute();
  return { ...user, domain };
}

/** A request as the customer pages record it; each one newer than the last. */
async function request(
  user: User,
  values: {
    snapshot?: string;
    state?: ArchiveRequestState;
    ip?: string | null;
    sizeBytes?: number;
    archiveId?: string | null;
    customer?: string;
  } = {},
) {
  minutesAgo -= 10;
  return db()
    .insertInto('archive_requests')
    .values({
      user_id: user.id,
      customer: values.customer ?? user.domain!,
      snapshot: values.snapshot ?? 'daily.0',
      archive_id: values.archiveId === undefined ? archiveId() : values.archiveId,
      state: values.state ?? 'ready',
      size_bytes: values.sizeBytes ?? null,
      requested_ip: values.ip === undefined ? '198.51.100.40' : values.ip,
      requested_at: new Date(subject.clock.now().getTime() - minutesAgo * MINUTE),
    })
    .returning(['id', 'archive_id', 'requested_at'])
    .executeTakeFirstOrThrow();
}

let seq = 0;
async function event(
  archive: string,
  customer: string,
  type: string,
  values: { ip?: string | null; bytes?: number | null; detail?: string | null; at?: Date } = {},
) {
  seq += 1;
  await db()
    .insertInto('backup_host_events')
    .values({
      host: 'default',
      seq,
      at: values.at ?? subject.clock.now(),
      type,
      customer,
      archive_id: archive,
      ip: values.ip ?? null,
      bytes: values.bytes ?? null,
      detail: values.detail ?? null,
    })
    .execute();
}

/** The text of the page between two markers, tags removed, whitespace collapsed: what a reader sees. */
function visibleText(html: string): string {
  return html
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

function sectionsOf(html: string): string[] {
  return [...html.matchAll(/<section class="request">([\s\S]*?)<\/section>/g)].map((m) => visibleText(m[1]!));
}

describe('the request log', () => {
  it('is linked from the operator area and shows each request with its customer, IP, size and events in order', async () => {
    const home = await desk.get('/operator');
    expect(home.body).toContain('<a href="/operator/requests">Archive requests and downloads</a>');

    const alice = await customerWith('alice@shop.example', 'shop.example');
    const req = await request(alice, { snapshot: 'daily.2', sizeBytes: 3 * 1024 * 1024, ip: '2001:db8::40' });
    const id = req.archive_id!;
    const t = (m: number) => new Date(req.requested_at.getTime() + m * MINUTE);
    await event(id, 'shop.example', 'archive.requested', { detail: 'snapshot daily.2', at: t(0) });
    await event(id, 'shop.example', 'archive.ready', { bytes: 3 * 1024 * 1024, at: t(1) });
    await event(id, 'shop.example', 'archive.armed', { at: t(2) });
    await event(id, 'shop.example', 'link.issued', { ip: '192.0.2.41', detail: 'expires 1790000000', at: t(3) });
    await event(id, 'shop.example', 'download.interrupted', {
      ip: '192.0.2.41',
      bytes: 1000,
      detail: 'status 200, completion none, size 3145728',
      at: t(4),
    });
    await event(id, 'shop.example', 'link.issued', { ip: '192.0.2.42', at: t(5) });
    await event(id, 'shop.example', 'download.completed', { ip: '192.0.2.42', bytes: 3 * 1024 * 1024, at: t(6) });
    // The same archive id reported for another customer is not this request's story.
    await event(id, 'elsewhere.example', 'link.issued', { ip: '203.0.113.99', at: t(7) });
    await db()
      .updateTable('archive_requests')
      .set({ state: 'downloaded', finished_at: t(6) })
      .where('archive_id', '=', id)
      .execute();

    const page = await desk.get('/operator/requests?q=alice@shop.example');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    const when = (m: number) => t(m).toISOString().slice(0, 19).replace('T', ' ');
    expect(sectionsOf(page.body)).toEqual([
      [
        'alice@shop.example · shop.example · daily.2',
        `State downloaded (${when(6)})`,
        'Backup host default',
        `Requested ${when(0)} from 2001:db8::40`,
        'Size 3.0 MiB',
        `Archive ${id}`,
        'Time (UTC) Event IP Bytes Detail',
        `${when(0)} Build started on the backup host snapshot daily.2`,
        `${when(1)} Archive ready 3145728`,
        `${when(2)} New download token (an email sent, or the emailed one used and replaced)`,
        `${when(3)} Link issued 192.0.2.41 expires 1790000000`,
        `${when(4)} Download interrupted 192.0.2.41 1000 status 200, completion none, size 3145728`,
        `${when(5)} Link issued 192.0.2.42`,
        `${when(6)} Download completed 192.0.2.42 3145728`,
      ].join(' '),
    ]);
    expect(page.body).not.toContain('203.0.113.99');
  });

  it('says whether the link email went out, is being retried, or was given up, with the reason', async () => {
    const bob = await customerWith('bob@mail-trouble.example', 'mail-trouble.example');
    // One reading of the clock: the stored times and the expected stamps must agree to the second.
    const now = subject.clock.now().getTime();
    const at = (m: number) => new Date(now + m * MINUTE);
    const stamp = (m: number) => at(m).toISOString().slice(0, 19).replace('T', ' ');
    const rows = [await request(bob), await request(bob), await request(bob), await request(bob, { state: 'building' })];
    const set = (i: number, values: Record<string, unknown>) =>
      db().updateTable('archive_requests').set(values).where('id', '=', rows[i]!.id).execute();
    await set(0, { notified_at: at(-30), notify_attempts: 1 });
    await set(1, { notify_due_at: at(4), notify_attempts: 3, last_notify_error: 'SMTP 451 <b>try later</b>' });
    await set(2, { notify_due_at: null, notify_attempts: 10, last_notify_error: 'SMTP 550 mailbox unavailable' });

    const page = await desk.get('/operator/requests?q=mail-trouble.example');
    const linkLines = sectionsOf(page.body).map((text) => /Link email (.*?) No events from the backup host yet\./.exec(text)?.[1] ?? null);
    // Newest first: the building one has no email yet.
    expect(linkLines).toEqual([
      null,
      'given up after 10 attempt(s): SMTP 550 mailbox unavailable',
      // The stored reason is shown escaped.
      `not sent after 3 attempt(s), trying again ${stamp(4)}: SMTP 451 &lt;b&gt;try later&lt;/b&gt;`,
      `sent ${stamp(-30)}`,
    ]);
  });

  it('shows newest first, 50 to a page, with a link to older requests that keeps the search', async () => {
    const bob = await customerWith('bob@paging.example', 'paging.example');
    const made: string[] = [];
    for (let i = 0; i < 53; i++) made.push((await request(bob, { snapshot: `daily.${i}` })).archive_id!);
    const first = await desk.get('/operator/requests?q=paging.example');
    expect(first.status).toBe(200);
    const firstSnapshots = [...first.body.matchAll(/<h3>bob@paging\.example · paging\.example · (daily\.\d+)<\/h3>/g)].map((m) => m[1]);
    expect(firstSnapshots).toEqual(Array.from({ length: 50 }, (_v, i) => `daily.${52 - i}`));
    const older = /<a href="([^"]+)">Older requests<\/a>/.exec(first.body)![1]!.replaceAll('&amp;', '&');
    expect(older).toMatch(/^\/operator\/requests\?q=paging\.example&before=[0-9a-f-]{36}$/);

    const second = await desk.get(older);
    expect(second.status).toBe(200);
    const secondSnapshots = [...second.body.matchAll(/<h3>bob@paging\.example · paging\.example · (daily\.\d+)<\/h3>/g)].map((m) => m[1]);
    expect(secondSnapshots).toEqual(['daily.2', 'daily.1', 'daily.0']);
    expect(second.body).not.toContain('Older requests');
  });

  it("finds requests by part of the customer's email or domain, and says so when none match", async () => {
    const carol = await customerWith('carol@filter-one.example', 'filter-one.example');
    const dave = await customerWith('dave@filter-two.example', 'filter-two.example');
    await request(carol, { snapshot: 'weekly.1' });
    await request(dave, { snapshot: 'weekly.2' });
    const heads = (html: string) => [...html.matchAll(/<h3>([^<]+)<\/h3>/g)].map((m) => m[1]);

    expect(heads((await desk.get('/operator/requests?q=CAROL@')).body)).toEqual([
      'carol@filter-one.example · filter-one.example · weekly.1',
    ]);
    expect(heads((await desk.get('/operator/requests?q=filter-two')).body)).toEqual([
      'dave@filter-two.example · filter-two.example · weekly.2',
    ]);
    expect(heads((await desk.get('/operator/requests?q=filter-')).body)).toEqual([
      'dave@filter-two.example · filter-two.example · weekly.2',
      'carol@filter-one.example · filter-one.example · weekly.1',
    ]);
    // % and _ are letters here, not wildcards.
    const none = await desk.get('/operator/requests?q=filter%25one');
    expect(none.status).toBe(200);
    expect(heads(none.body)).toEqual([]);
    expect(none.body).toContain('No request matches that search.');
    expect(none.body).toContain('value="filter%one"');
  });

  it('answers 400 with a page that says why for a bad search or page link', async () => {
    const known = await customerWith('erin@bad-values.example', 'bad-values.example');
    const existing = await request(known);
    await db().deleteFrom('archive_requests').where('id', '=', existing.id).execute();
    const cases: Array<[string, string]> = [
      [`/operator/requests?q=${'a'.repeat(255)}`, 'The search term is longer than 254 characters'],
      ['/operator/requests?q=a&q=b', 'Give one search term only.'],
      ['/operator/requests?q=%00erin', 'characters that cannot be part of an email address or domain'],
      ['/operator/requests?before=7', 'That page link is not valid.'],
      ['/operator/requests?before=%27%20or%201%3D1--', 'That page link is not valid.'],
      ['/operator/requests?before=a&before=b', 'That page link is not valid.'],
      [`/operator/requests?before=${existing.id}`, 'That page of the log is no longer there.'],
    ];
    for (const [url, message] of cases) {
      const page = await desk.get(url);
      expect(page.status, url).toBe(400);
      expect(page.body, url).toContain(message);
      expect(page.body, url).toContain('<form method="get" action="/operator/requests"');
      expect(page.body, url).not.toContain('<section class="request">');
    }
  });

  it('escapes HTML in customer domains, snapshots, event details and the last sync error', async () => {
    const mallory = await customerWith('mallory@evil.example', '<script>alert("domain")</script>');
    const req = await request(mallory, { customer: '<b>customer</b>', snapshot: '<i>snap</i>', state: 'failed' });
    await db().updateTable('archive_requests').set({ failure_reason: '<u>reason</u>' }).where('id', '=', req.id).execute();
    await event(req.archive_id!, '<b>customer</b>', 'archive.<img>', { detail: '<img src=x onerror=alert(1)>' });
    await db()
      .insertInto('backup_host_sync')
      .values({ host: 'default', last_seq: seq, synced_at: subject.clock.now(), last_error: '<marquee>ssh said no</marquee>' })
      .onConflict((oc) => oc.column('host').doUpdateSet({ last_error: '<marquee>ssh said no</marquee>' }))
      .execute();

    const page = await desk.get('/operator/requests?q=mallory');
    expect(page.status).toBe(200);
    for (const raw of [
      '<script>alert("domain")',
      '<b>customer</b>',
      '<i>snap</i>',
      '<u>reason</u>',
      '<img src=x',
      'archive.<img>',
      '<marquee>',
    ])
      expect(page.body).not.toContain(raw);
    for (const escaped of [
      '&lt;script&gt;alert(&quot;domain&quot;)&lt;/script&gt;',
      '&lt;b&gt;customer&lt;/b&gt;',
      '&lt;i&gt;snap&lt;/i&gt;',
      '&lt;u&gt;reason&lt;/u&gt;',
      '&lt;img src=x onerror=alert(1)&gt;',
      'archive.&lt;img&gt;',
      '&lt;marquee&gt;ssh said no&lt;/marquee&gt;',
    ]) {
      expect(page.body).toContain(escaped);
    }
    // A search term is shown back in the field, escaped too.
    const search = await desk.get('/operator/requests?q=%22%3E%3Cscript%3E');
    expect(search.body).toContain('value="&quot;&gt;&lt;script&gt;"');
  });

  it("shows how far the backup host's events have been copied, and the last error", async () => {
    const syncedAt = new Date('2026-11-22T10:11:12.000Z');
    await db()
      .insertInto('backup_host_sync')
      .values({
        host: 'default',
        last_seq: 4242,
        synced_at: syncedAt,
        last_error: 'backup host ended events.since with exit 255: Connection refused',
      })
      .onConflict((oc) =>
        oc.column('host').doUpdateSet({
          last_seq: 4242,
          synced_at: syncedAt,
          last_error: 'backup host ended events.since with exit 255: Connection refused',
        }),
      )
      .execute();
    // A second host, copied five minutes ago: each host has its own row, so the one behind stands out.
    // Five minutes, not now: the page is rendered a moment later, and "ago" must not depend on that moment.
    const westSyncedAt = new Date(Math.floor(subject.clock.now().getTime() / 1000) * 1000 - 5 * 60_000);
    await db()
      .insertInto('backup_host_sync')
      .values({ host: 'west', last_seq: 7, synced_at: westSyncedAt })
      .onConflict((oc) => oc.column('host').doUpdateSet({ last_seq: 7, synced_at: westSyncedAt, last_error: null }))
      .execute();
    const page = await desk.get('/operator/requests');
    const rows = [...page.body.matchAll(/<tr>\s*<th scope="row">([\s\S]*?)<\/tr>/g)].map((m) => visibleText(m[1]!));
    const hoursAgo = Math.floor((subject.clock.now().getTime() - syncedAt.getTime()) / 3_600_000);
    expect(rows).toEqual([
      `default (no longer configured) 4242 2026-11-22 10:11:12 (${hoursAgo} hours ago) backup host ended events.since with exit 255: Connection refused`,
      `west (no longer configured) 7 ${westSyncedAt.toISOString().slice(0, 19).replace('T', ' ')} (5 minutes ago) none`,
    ]);
    // This app has no backup host configured, and says so.
    expect(page.body).toContain('No backup host is configured, so no events are copied.');
  });

  it('shows a request whose address is past the retention period as removed', async () => {
    const frank = await customerWith('frank@purged.example', 'purged.example');
    await request(frank, { ip: null, archiveId: null, state: 'requested' });
    const section = sectionsOf((await desk.get('/operator/requests?q=frank@')).body)[0]!;
    expect(section).toContain('from (address removed)');
    expect(section).toContain('No events from the backup host yet.');
  });
});

describe('who may see it', () => {
  it('sends a visitor to sign in and refuses a customer, as every operator page does', async () => {
    const visitor = await new WebClient(subject.app).get('/operator/requests?q=shop');
    expect(visitor.status).toBe(303);
    expect(visitor.location).toBe('/sign-in?next=%2Foperator%2Frequests%3Fq%3Dshop');

    const grace = await customerWith('grace@curious.example', 'curious.example');
    await request(grace, { snapshot: 'daily.9' });
    const client = new WebClient(subject.app);
    expect((await client.signIn(grace.email, PASSWORD)).status).toBe(303);
    const page = await client.get('/operator/requests');
    expect(page.status).toBe(404);
    expect(page.body).toContain('There is no page at this address.');
    expect(page.body).not.toContain('Archive requests');
    expect(page.body).not.toContain('daily.9');
    expect(page.body).not.toContain('198.51.100.40');
  });
});
