// Copying the backup host's events into the portal: in order and once, all or nothing, and the
// downloads and expiries they report reaching the customer's archive requests.
import { fleetOfOne } from '../../src/config.js';
import { createContext } from '../../src/context.js';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../src/users/user.repository.js';
import { EVENT_SYNC_LEASE_MS, startEventSync, syncBackupHostEvents, type EventSyncDeps } from '../../src/archives/event-sync.js';
import { sql } from 'kysely';
import { backupHostFromSettings, type BackupHost } from '../../src/backup-host/index.js';
import type { DispatcherEvent } from '../../src/protocol/index.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { BUNDLE, makeWorld, tokenHash, type World } from '../dispatcher/world.js';
import { eventually } from '../harness/eventually.js';
import { createOperator, createUser, signInOperator } from '../harness/users.js';

let subject: PortalWorld;
let w: World;
let backupHost: BackupHost;
let customer: User;
let watcher: ChildProcess | null = null;
const TOKEN = 'E'.repeat(43);
const DAY = 86_400;

beforeAll(async () => {
  subject = await startPortalWorld();
  customer = await createUser(subject.app);
  w = makeWorld();
  mkdirSync(join(w.backupRoot, customer.domain!, 'daily.0'), { recursive: true });
  writeFileSync(join(w.backupRoot, customer.domain!, 'daily.0', 'site.txt'), "the customer's site\n".repeat(500));
  writeFileSync(w.downloadLog, '');
  backupHost = backupHostFromSettings({ localDispatcherConfig: w.configPath, localDispatcherPath: BUNDLE });
});

afterEach(async () => {
  await stopWatch();
});

afterAll(async () => {
  await subject.close();
});

const db = () => subject.app.ctx.database.db;
const deps = (overrides: Partial<EventSyncDeps> = {}): EventSyncDeps => ({
  db: db(),
  backupHost,
  clock: subject.clock,
  publicUrl: subject.app.ctx.config.publicUrl,
  mail: subject.app.ctx.mail,
  ...overrides,
});

/** The real backup host, whose events.since answers are held back until the test releases them. */
function heldEvents(): { host: Pick<BackupHost, 'eventsSince'>; calls(): number; release(): void } {
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  let calls = 0;
  const host: Pick<BackupHost, 'eventsSince'> = {
    eventsSince: async (request) => {
      calls++;
      const answer = await backupHost.eventsSince(request);
      await held;
      return answer;
    },
  };
  return { host, calls: () => calls, release: () => release() };
}

/** Everything the dispatcher has recorded, as events.since gives it (less `delivered`, which the portal keeps on the request). */
const dispatcherEvents = (): DispatcherEvent[] =>
  (w.run('events.since', { after: 0 }).answer.result.events as DispatcherEvent[]).map(({ delivered: _delivered, ...event }) => event);

/** Everything the portal has copied for one host, in the dispatcher's shape. */
async function copiedEvents(host: string): Promise<DispatcherEvent[]> {
  const rows = await db().selectFrom('backup_host_events').selectAll().where('host', '=', host).orderBy('seq').execute();
  return rows.map((r) => ({
    seq: Number(r.seq),
    time: r.at.toISOString(),
    type: r.type as DispatcherEvent['type'],
    customer: r.customer,
    archiveId: r.archive_id,
    ip: r.ip,
    bytes: r.bytes === null ? null : Number(r.bytes),
    detail: r.detail,
  }));
}

async function syncRow(host: string) {
  return db()
    .selectFrom('backup_host_sync')
    .select(['last_seq', 'synced_at', 'last_error'])
    .where('host', '=', host)
    .executeTakeFirstOrThrow();
}

async function leasedUntil(host: string): Promise<number> {
  const row = await db().selectFrom('backup_host_sync').select('leased_until').where('host', '=', host).executeTakeFirstOrThrow();
  return row.leased_until!.getTime();
}

/** An archive built, ready and armed on the backup host, as the customer's request would make it. */
async function readyArchive(): Promise<{ id: string; size: number }> {
  const created = w.run('archive.create', { customer: customer.domain, snapshot: 'daily.0' });
  expect(created.code).toBe(0);
  const id: string = created.answer.result.archiveId;
  const status = await eventually('the archive to be ready', () => {
    const s = w.run('archive.status', { customer: customer.domain, archiveId: id }).answer.result;
    return s.state === 'ready' ? s : null;
  });
  expect(w.run('archive.arm', { customer: customer.domain, archiveId: id, tokenHash: tokenHash(TOKEN) }).code).toBe(0);
  return { id, size: status.sizeBytes };
}

function issueLink(archiveId: string, clientIp: string): string {
  const issued = w.run('link.issue', { customer: customer.domain, archiveId, token: TOKEN, clientIp });
  expect(issued.code).toBe(0);
  return new URL(issued.answer.result.url).pathname;
}

/** What nginx writes to the download log when a download ends (see nginx/ and test/dispatcher/watch.test.ts). */
function download(uri: string, remote: string, bytes: number, completion: 'OK' | ''): void {
  appendFileSync(
    w.downloadLog,
    `${JSON.stringify({ time: new Date().toISOString(), remote_addr: remote, uri, status: 200, bytes, completion, request_time: 0.5 })}\n`,
  );
}

async function watchUntil(what: string, done: () => boolean): Promise<void> {
  watcher = w.start(['watch']);
  await eventually(what, done);
  await stopWatch();
}

async function stopWatch(): Promise<void> {
  const p = watcher;
  watcher = null;
  if (!p || p.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
}

async function insertRequest(values: {
  archiveId: string;
  state: 'building' | 'ready' | 'downloaded';
  customer?: string;
  sizeBytes?: number;
}) {
  return db()
    .insertInto('archive_requests')
    .values({
      user_id: customer.id,
      customer: values.customer ?? customer.domain!,
      snapshot: 'daily.0',
      archive_id: values.archiveId,
      state: values.state,
      size_bytes: values.sizeBytes ?? null,
      requested_ip: '198.51.100.20',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

async function requestRow(archiveId: string) {
  return db().selectFrom('archive_requests').select(['state', 'finished_at']).where('archive_id', '=', archiveId).executeTakeFirstOrThrow();
}

describe("copying the backup host's events", () => {
  it('copies every event once and in order, across pages and across syncs', async () => {
    const first = await readyArchive();
    issueLink(first.id, '192.0.2.7');
    const second = await readyArchive();
    issueLink(second.id, '2001:db8::7');
    issueLink(second.id, '192.0.2.8');
    const recorded = dispatcherEvents();
    expect(recorded.length).toBeGreaterThan(7);

    // Pages of 3: several full pages, then a short one.
    const synced = await syncBackupHostEvents(deps({ host: 'paging', pageSize: 3 }));
    expect(synced).toEqual({
      outcome: 'synced',
      received: recorded.length,
      lastSeq: recorded.length,
      more: false,
      downloaded: 0,
      expired: 0,
    });
    expect(await copiedEvents('paging')).toEqual(recorded);
    expect(recorded.map((e) => e.seq)).toEqual(recorded.map((_e, i) => i + 1));
    const row = await syncRow('paging');
    expect(row).toEqual({ last_seq: String(recorded.length), synced_at: expect.any(Date), last_error: null });

    // Nothing new: nothing copied, nothing changed.
    expect(await syncBackupHostEvents(deps({ host: 'paging', pageSize: 3 }))).toMatchObject({
      outcome: 'synced',
      received: 0,
      lastSeq: recorded.length,
    });

    // Exactly one full page of new events, then the empty page that shows there are no more.
    const third = await readyArchive();
    const now = dispatcherEvents();
    const fresh = now.length - recorded.length;
    expect(await syncBackupHostEvents(deps({ host: 'paging', pageSize: fresh }))).toMatchObject({
      outcome: 'synced',
      received: fresh,
      lastSeq: now.length,
      more: false,
    });
    expect(await copiedEvents('paging')).toEqual(now);
    expect(now.filter((e) => e.archiveId === third.id).map((e) => e.type)).toEqual(['archive.requested', 'archive.ready', 'archive.armed']);
  });

  it('copies a long backlog over several syncs when one sync reaches its page limit', async () => {
    const recorded = dispatcherEvents();
    const firstPart = await syncBackupHostEvents(deps({ host: 'backlog', pageSize: 2, maxPages: 2 }));
    expect(firstPart).toEqual({ outcome: 'synced', received: 4, lastSeq: 4, more: true, downloaded: 0, expired: 0 });
    expect(await copiedEvents('backlog')).toEqual(recorded.slice(0, 4));
    let last = firstPart;
    while (last.outcome === 'synced' && last.more) last = await syncBackupHostEvents(deps({ host: 'backlog', pageSize: 2, maxPages: 2 }));
    expect(last).toMatchObject({ outcome: 'synced', more: false, lastSeq: recorded.length });
    expect(await copiedEvents('backlog')).toEqual(recorded);
  });

  it('lets only one of two syncs started at once copy the events; the other skips instead of waiting', async () => {
    const recorded = dispatcherEvents();
    // The first sync holds the progress row while its backup host call is held open.
    const slow = heldEvents();
    const first = syncBackupHostEvents(deps({ host: 'race', backupHost: slow.host }));
    await eventually('the first sync to call the backup host', () => slow.calls() === 1);
    const second = await syncBackupHostEvents(deps({ host: 'race', backupHost: slow.host }));
    expect(second).toEqual({ outcome: 'busy' });
    expect(slow.calls()).toBe(1);
    slow.release();
    expect(await first).toMatchObject({ outcome: 'synced', received: recorded.length, lastSeq: recorded.length });
    expect(await copiedEvents('race')).toEqual(recorded);

    // Started together for real: whichever order they take, each event is counted once.
    issueLink((await readyArchive()).id, '192.0.2.9');
    const both = await Promise.all([syncBackupHostEvents(deps({ host: 'race' })), syncBackupHostEvents(deps({ host: 'race' }))]);
    const now = dispatcherEvents();
    const received = both.reduce((sum, r) => sum + (r.outcome === 'synced' ? r.received : 0), 0);
    expect(received).toBe(now.length - recorded.length);
    expect(await copiedEvents('race')).toEqual(now);
    expect((await syncRow('race')).last_seq).toBe(String(now.length));
  });

  it('holds no transaction while the backup host answers; a sync whose lease ran out stores nothing over a newer one', async () => {
    const recorded = dispatcherEvents();
    const slow = heldEvents();
    const stale = syncBackupHostEvents(deps({ host: 'lease', backupHost: slow.host }));
    await eventually('the stale sync to call the backup host', () => slow.calls() === 1);
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`.execute(
      db(),
    );
    expect(rows[0]!.n).toBe(0);

    // Its instance seems gone: after the lease another sync copies everything.
    subject.clock.advance(EVENT_SYNC_LEASE_MS + 1_000);
    expect(await syncBackupHostEvents(deps({ host: 'lease' }))).toMatchObject({ outcome: 'synced', received: recorded.length });
    slow.release();
    expect(await stale).toEqual({ outcome: 'busy' });
    expect(await copiedEvents('lease')).toEqual(recorded);
    expect((await syncRow('lease')).last_seq).toBe(String(recorded.length));
  });

  it('renews its short lease after each page: a long sync is not taken over, a dead one is within one lease', async () => {
    // Three pages of two, and one event more.
    while (dispatcherEvents().length < 7) await readyArchive();
    const recorded = dispatcherEvents();
    const leases: number[] = [];
    const rivals: string[] = [];
    // Each page takes most of a lease on the test clock; a rival sync tries to take over during each.
    const slowPages: Pick<BackupHost, 'eventsSince'> = {
      eventsSince: async (request) => {
        leases.push((await leasedUntil('renew')) - subject.clock.now().getTime());
        subject.clock.advance(EVENT_SYNC_LEASE_MS - 10_000);
        rivals.push((await syncBackupHostEvents(deps({ host: 'renew' }))).outcome);
        return backupHost.eventsSince(request);
      },
    };
    const long = await syncBackupHostEvents(deps({ host: 'renew', backupHost: slowPages, pageSize: 2, maxPages: 3 }));
    expect(long).toMatchObject({ outcome: 'synced', received: 6, lastSeq: 6, more: true });
    // Three pages took almost three leases, yet each page started with a whole lease ahead of it.
    expect(leases).toHaveLength(3);
    for (const ahead of leases) {
      expect(ahead).toBeGreaterThan(EVENT_SYNC_LEASE_MS - 5_000);
      expect(ahead).toBeLessThanOrEqual(EVENT_SYNC_LEASE_MS);
    }
    expect(rivals).toEqual(['busy', 'busy', 'busy']);
    expect(await copiedEvents('renew')).toEqual(recorded.slice(0, 6));

    // A sync that stops in its first page (its instance died) holds the row for one lease, no more.
    const dead = heldEvents();
    void syncBackupHostEvents(deps({ host: 'renew', backupHost: dead.host, pageSize: 2, maxPages: 3 }));
    await eventually('the dying sync to call the backup host', () => dead.calls() === 1);
    expect(await syncBackupHostEvents(deps({ host: 'renew' }))).toEqual({ outcome: 'busy' });
    subject.clock.advance(EVENT_SYNC_LEASE_MS);
    expect(await syncBackupHostEvents(deps({ host: 'renew' }))).toMatchObject({ outcome: 'synced', lastSeq: recorded.length });
    dead.release();
  });

  it('records the error and keeps its place when the backup host fails, and catches up at the next good sync', async () => {
    const before = dispatcherEvents();
    await syncBackupHostEvents(deps({ host: 'flaky' }));
    const good = await syncRow('flaky');
    expect(good.last_seq).toBe(String(before.length));

    issueLink((await readyArchive()).id, '192.0.2.10');
    const now = dispatcherEvents();
    // A dispatcher whose configuration file is missing fails every call (exit 2).
    const broken = backupHostFromSettings({ localDispatcherConfig: join(w.dir, 'missing.json'), localDispatcherPath: BUNDLE });
    const failed = await syncBackupHostEvents(deps({ host: 'flaky', backupHost: broken }));
    expect(failed).toEqual({
      outcome: 'failed',
      lastSeq: before.length,
      error: 'backup host failed events.since (misconfigured): the backup host is not configured correctly; see the call log',
    });
    expect(await syncRow('flaky')).toEqual({
      last_seq: good.last_seq,
      synced_at: good.synced_at,
      last_error: failed.outcome === 'failed' ? failed.error : '',
    });
    expect(await copiedEvents('flaky')).toEqual(before);

    // The first page arrives, the second call fails: the first page is not kept either.
    let calls = 0;
    const failsOnSecondPage: Pick<BackupHost, 'eventsSince'> = {
      eventsSince: (r) => (++calls === 1 ? backupHost.eventsSince(r) : broken.eventsSince(r)),
    };
    expect(await syncBackupHostEvents(deps({ host: 'flaky', backupHost: failsOnSecondPage, pageSize: 1 }))).toMatchObject({
      outcome: 'failed',
      lastSeq: before.length,
    });
    expect(calls).toBe(2);
    expect(await copiedEvents('flaky')).toEqual(before);
    expect((await syncRow('flaky')).last_seq).toBe(good.last_seq);

    const caughtUp = await syncBackupHostEvents(deps({ host: 'flaky' }));
    expect(caughtUp).toMatchObject({ outcome: 'synced', received: now.length - before.length, lastSeq: now.length });
    expect(await copiedEvents('flaky')).toEqual(now);
    expect(await syncRow('flaky')).toMatchObject({ last_seq: String(now.length), last_error: null });
  });

  it('refuses an event log that went backwards (a reinstalled backup host) instead of mixing two histories', async () => {
    const recorded = dispatcherEvents();
    await syncBackupHostEvents(deps({ host: 'reinstalled' }));
    await db()
      .updateTable('backup_host_sync')
      .set({ last_seq: recorded.length + 100 })
      .where('host', '=', 'reinstalled')
      .execute();
    const result = await syncBackupHostEvents(deps({ host: 'reinstalled' }));
    expect(result).toEqual({
      outcome: 'failed',
      lastSeq: recorded.length + 100,
      error: expect.stringContaining('event log seems to have been replaced'),
    });
    expect(await copiedEvents('reinstalled')).toEqual(recorded);
  });
});

describe('what the events change in the portal', () => {
  it('marks a request downloaded once its download completes, not when one is interrupted', async () => {
    const archive = await readyArchive();
    await insertRequest({ archiveId: archive.id, state: 'ready', sizeBytes: archive.size });
    await syncBackupHostEvents(deps());

    const interruptedLink = issueLink(archive.id, '192.0.2.30');
    download(interruptedLink, '192.0.2.30', 1000, '');
    await watchUntil('the interrupted download', () =>
      dispatcherEvents().some((e) => e.archiveId === archive.id && e.type === 'download.interrupted'),
    );
    expect(await syncBackupHostEvents(deps())).toMatchObject({ outcome: 'synced', downloaded: 0 });
    expect(await requestRow(archive.id)).toEqual({ state: 'ready', finished_at: null });

    const link = issueLink(archive.id, '2001:db8::30');
    download(link, '2001:db8::30', archive.size, 'OK');
    await watchUntil('the completed download', () =>
      dispatcherEvents().some((e) => e.archiveId === archive.id && e.type === 'download.completed'),
    );
    expect(await syncBackupHostEvents(deps())).toMatchObject({ outcome: 'synced', downloaded: 1, expired: 0 });
    const completed = dispatcherEvents().find((e) => e.archiveId === archive.id && e.type === 'download.completed')!;
    expect(completed).toMatchObject({ ip: '2001:db8::30', bytes: archive.size });
    expect(await requestRow(archive.id)).toEqual({ state: 'downloaded', finished_at: new Date(completed.time) });

    const stored = await copiedEvents('default');
    expect(stored.filter((e) => e.archiveId === archive.id).map((e) => [e.type, e.ip])).toEqual([
      ['archive.requested', null],
      ['archive.ready', null],
      ['archive.armed', null],
      ['link.issued', '192.0.2.30'],
      ['download.interrupted', '192.0.2.30'],
      ['link.issued', '2001:db8::30'],
      ['download.completed', '2001:db8::30'],
    ]);

    // The operator's request log tells the same story.
    const { operator, secret } = await createOperator(subject.app);
    const desk = new WebClient(subject.app);
    await signInOperator(subject.app, desk, operator.email, secret);
    const page = await desk.get('/operator/requests');
    expect(page.status).toBe(200);
    expect(page.body).toContain(archive.id);
    expect(page.body).toContain('Download interrupted');
    expect(page.body).toContain('Download completed');
    expect(page.body).toContain('2001:db8::30');
  });

  it("keeps a partial download's delivered bytes and parts on the request, and refuses a malformed count", async () => {
    const archive = await readyArchive();
    await insertRequest({ archiveId: archive.id, state: 'ready', sizeBytes: archive.size });
    const link = issueLink(archive.id, '192.0.2.31');
    download(link, '192.0.2.31', 1234, '');
    await watchUntil('the interrupted download', () =>
      dispatcherEvents().some((e) => e.archiveId === archive.id && e.type === 'download.interrupted'),
    );
    expect(await syncBackupHostEvents(deps())).toMatchObject({ outcome: 'synced', downloaded: 0 });
    const delivered = () =>
      db()
        .selectFrom('archive_requests')
        .select(['state', 'delivered_bytes', 'delivered_parts'])
        .where('archive_id', '=', archive.id)
        .executeTakeFirstOrThrow();
    expect(await delivered()).toEqual({ state: 'ready', delivered_bytes: '1234', delivered_parts: 1 });

    // A count that is not whole bytes, or more than the archive holds, stops the sync before anything is stored.
    const last = (await syncRow('default')).last_seq;
    for (const bad of [{ bytes: 5, total: 3, parts: 1 }, { bytes: -1, total: 3, parts: 1 }, { bytes: 1, total: 3 }, 'all']) {
      const forged: Pick<BackupHost, 'eventsSince'> = {
        eventsSince: async () => ({
          events: [{ ...dispatcherEvents().at(-1)!, seq: Number(last) + 1, delivered: bad as never }],
          lastSeq: Number(last) + 1,
        }),
      };
      expect(await syncBackupHostEvents(deps({ backupHost: forged }))).toMatchObject({
        outcome: 'failed',
        error: expect.stringContaining('delivered is not a count of bytes and parts'),
      });
    }
    expect((await syncRow('default')).last_seq).toBe(last);
    expect(await delivered()).toEqual({ state: 'ready', delivered_bytes: '1234', delivered_parts: 1 });

    // The rest, whole, from a fresh link: downloaded, with every byte delivered in two parts.
    download(issueLink(archive.id, '192.0.2.31'), '192.0.2.31', archive.size, 'OK');
    await watchUntil('the completed download', () =>
      dispatcherEvents().some((e) => e.archiveId === archive.id && e.type === 'download.completed'),
    );
    expect(await syncBackupHostEvents(deps())).toMatchObject({ outcome: 'synced', downloaded: 1 });
    expect(await delivered()).toEqual({ state: 'downloaded', delivered_bytes: String(archive.size), delivered_parts: 2 });

    // The operator's log names the parts of the resumed download.
    const { operator, secret } = await createOperator(subject.app);
    const desk = new WebClient(subject.app);
    await signInOperator(subject.app, desk, operator.email, secret);
    const page = await desk.get('/operator/log?kind=download');
    expect(page.status).toBe(200);
    expect(page.body).toContain(`delivered: 1234 of ${archive.size} bytes in 1 part</td>`);
    expect(page.body).toContain(`delivered: ${archive.size} of ${archive.size} bytes in 2 parts (resumed)</td>`);
  });

  it('marks ready requests expired when the backup host expires their archives, and leaves downloaded, mismatched and unknown ones alone', async () => {
    const expiring = await readyArchive();
    const otherCustomers = await readyArchive();
    const unknown = await readyArchive();
    await insertRequest({ archiveId: expiring.id, state: 'ready' });
    // The backup host's events name the customer; a request of another customer is not touched.
    await insertRequest({ archiveId: otherCustomers.id, state: 'ready', customer: 'other.example.net' });
    await syncBackupHostEvents(deps());
    const before = await db().selectFrom('archive_requests').selectAll().orderBy('id').execute();
    const downloadedBefore = before.find((r) => r.state === 'downloaded');
    expect(downloadedBefore).toBeDefined();

    // A week later (the archives' retention), sweep expires every archive, downloaded ones too.
    const swept = w.run('sweep', '', { ARCHWAY_DISPATCHER_NOW_OFFSET: String(7 * DAY + 60) });
    expect(swept.answer.result.archivesExpired).toBeGreaterThanOrEqual(4);
    const expiredIds = dispatcherEvents()
      .filter((e) => e.type === 'archive.expired')
      .map((e) => e.archiveId);
    expect(expiredIds).toEqual(expect.arrayContaining([expiring.id, otherCustomers.id, unknown.id, downloadedBefore!.archive_id]));

    expect(await syncBackupHostEvents(deps())).toMatchObject({ outcome: 'synced', downloaded: 0, expired: 1 });
    const expiredEvent = dispatcherEvents().find((e) => e.type === 'archive.expired' && e.archiveId === expiring.id)!;
    expect(await requestRow(expiring.id)).toEqual({ state: 'expired', finished_at: new Date(expiredEvent.time) });

    const after = await db().selectFrom('archive_requests').selectAll().orderBy('id').execute();
    expect(after.filter((r) => r.archive_id !== expiring.id)).toEqual(before.filter((r) => r.archive_id !== expiring.id));
    // The events stay in the log even when no request matched them.
    expect((await copiedEvents('default')).filter((e) => e.archiveId === unknown.id).map((e) => e.type)).toEqual([
      'archive.requested',
      'archive.ready',
      'archive.armed',
      'archive.expired',
    ]);
  });
});

describe('the sync job that archway serve runs', () => {
  it('does nothing when no backup host is configured', async () => {
    const before = await db().selectFrom('backup_host_sync').selectAll().orderBy('host').execute();
    const stop = startEventSync(subject.app.ctx);
    await stop();
    expect(await db().selectFrom('backup_host_sync').selectAll().orderBy('host').execute()).toEqual(before);
  });

  it('syncs at once when started, and its stopper waits for the sync in hand', async () => {
    issueLink((await readyArchive()).id, '192.0.2.50');
    const recorded = dispatcherEvents();
    const stop = startEventSync(subject.app.ctx, { backupHost, intervalMs: 3_600_000 });
    try {
      await expect.poll(async () => (await syncRow('default')).last_seq, { timeout: 20_000 }).toBe(String(recorded.length));
    } finally {
      await stop();
    }
    expect(await copiedEvents('default')).toEqual(recorded);
    expect(subject.logText()).toContain('backup host events copied');
  });

  it('shows settings that cannot work (a missing SSH key file) as the last error instead of stopping the portal', async () => {
    const before = await syncRow('default');
    const misconfigured = createContext({
      log: subject.app.log,
      clock: subject.clock,
      database: subject.app.ctx.database,
      config: {
        ...subject.app.ctx.config,
        backupHosts: fleetOfOne({
          host: '127.0.0.1',
          port: 22,
          user: 'archway',
          privateKeyPath: join(w.dir, 'no-such-key'),
          hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`,
        }),
      },
    });
    const stop = startEventSync(misconfigured, { intervalMs: 3_600_000 });
    try {
      await expect
        .poll(async () => (await syncRow('default')).last_error, { timeout: 20_000 })
        .toMatch(/^cannot read the backup host private key file: ENOENT/);
    } finally {
      await stop();
    }
    expect(await syncRow('default')).toMatchObject({ last_seq: before.last_seq, synced_at: before.synced_at });
  });
});
