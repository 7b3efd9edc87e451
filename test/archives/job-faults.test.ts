// The link mailer and the status poller against a slow or dying worker: no transaction across the backup host call, a lease instead of a lock.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollDueArchives } from '../../src/archives/archive-poller.js';
import { LINK_MAIL_LEASE_MS, sendDueLinks } from '../../src/archives/link-mailer.js';
import { BackupHostError, type BackupHost } from '../../src/backup-host/index.js';
import { createUser } from '../harness/users.js';
import {
  askForArchive,
  makeSnapshot,
  pollUntil,
  releaseBuild,
  requestRow,
  signedIn,
  startArchiveWorld,
  type ArchiveWorld,
} from './archive-world.js';

let world: ArchiveWorld;
beforeAll(async () => {
  world = await startArchiveWorld();
});
afterAll(async () => world?.close());

/** The real backup host, with one call held until the test lets it go (or fails it). */
function heldHost(method: 'armArchive' | 'archiveStatuses' = 'armArchive'): {
  host: BackupHost;
  armed: Promise<void>;
  release(outcome?: Error): void;
} {
  const real = world.app.ctx.backupHosts.use('default');
  let arrived!: () => void;
  let release!: (outcome?: Error) => void;
  const armed = new Promise<void>((resolve) => (arrived = resolve));
  const gate = new Promise<Error | undefined>((resolve) => (release = resolve));
  const host: BackupHost = Object.assign(Object.create(real) as BackupHost, {
    [method]: async (input: never) => {
      arrived();
      const failure = await gate;
      if (failure) throw failure;
      return (real[method] as (input: never) => Promise<unknown>)(input);
    },
  });
  return { host, armed, release };
}

/** A ready archive whose link email is due (not yet sent). */
async function dueArchive(): Promise<string> {
  const user = await createUser(world.app);
  makeSnapshot(world, user.domain!, 'daily.0', 1);
  const id = await askForArchive(await signedIn(world, user), 'daily.0');
  await pollUntil(world, id, ['ready']);
  return id;
}

const now = () => world.clock.now();
const openTransactions = async () =>
  (
    await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`.execute(
      world.app.ctx.database.db,
    )
  ).rows[0]!.n;

describe('the link mailer', () => {
  it('holds no transaction or row lock while the backup host call runs, and a second mailer leaves the claimed email alone', async () => {
    const id = await dueArchive();
    const held = heldHost();
    const before = world.sink.messages.length;
    const running = sendDueLinks(world.app.ctx, { now, host: held.host });
    await held.armed;
    expect(await openTransactions()).toBe(0);
    // The row can be written meanwhile: nobody holds its lock (a held lock would time out this update).
    await world.app.ctx.database.db.transaction().execute(async (trx) => {
      await sql`set local lock_timeout = '2s'`.execute(trx);
      await trx.updateTable('archive_requests').set({ last_notify_error: null }).where('id', '=', id).execute();
    });
    expect(await sendDueLinks(world.app.ctx, { now })).toEqual([]);
    held.release();
    expect(await running).toEqual(['sent']);
    expect(world.sink.messages.length - before).toBe(1);
    expect(await requestRow(world, id)).toMatchObject({ notify_due_at: null, notify_attempts: 1, last_notify_error: null });
  });

  it('sends the email of a worker that died in its call once the lease is over, and the dead worker records nothing', async () => {
    const id = await dueArchive();
    const dying = heldHost();
    const abandoned = sendDueLinks(world.app.ctx, { now, host: dying.host });
    await dying.armed;
    expect((await requestRow(world, id)).notify_attempts).toBe(1);

    // Within the lease nobody else mails it; after it, the next worker does.
    world.clock.advance(LINK_MAIL_LEASE_MS - 1_000);
    expect(await sendDueLinks(world.app.ctx, { now })).toEqual([]);
    world.clock.advance(2_000);
    const before = world.sink.messages.length;
    expect(await sendDueLinks(world.app.ctx, { now })).toEqual(['sent']);
    expect(world.sink.messages.length - before).toBe(1);
    const sent = await requestRow(world, id);
    expect(sent).toMatchObject({ notify_due_at: null, notify_attempts: 2 });

    // The first worker comes back with a failure: its claim is stale, so the row keeps the success.
    dying.release(new BackupHostError('connection reset'));
    expect(await abandoned).toEqual(['retry']);
    expect(await requestRow(world, id)).toMatchObject({
      notify_due_at: null,
      notify_attempts: 2,
      last_notify_error: null,
      notified_at: sent.notified_at,
    });
  });
});

describe('the status poller', () => {
  it('holds no transaction while the backup host answers, and a cancel made meanwhile wins over the late answer', async () => {
    const user = await createUser(world.app);
    const snapshot = makeSnapshot(world, user.domain!, 'daily.0', 1, { held: true });
    const client = await signedIn(world, user);
    const id = await askForArchive(client, 'daily.0');
    world.clock.advance(5_000);
    const held = heldHost('archiveStatuses');
    const polling = pollDueArchives(world.app.ctx, { now, host: held.host });
    await held.armed;
    expect(await openTransactions()).toBe(0);
    // Another poller skips the claimed request.
    expect(await pollDueArchives(world.app.ctx, { now })).toEqual([]);

    await client.get(`/archives/${id}`);
    expect((await client.post(`/archives/${id}/cancel`, {})).status).toBe(303);
    held.release();
    await polling;
    expect(await requestRow(world, id)).toMatchObject({ state: 'cancelled' });
    releaseBuild(snapshot);
  });
});
