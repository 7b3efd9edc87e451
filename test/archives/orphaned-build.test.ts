// An orphaned build: the portal died after the backup host started it and before it stored the archive id (issue 14, item 6).
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollDueArchives } from '../../src/archives/archive-poller.js';
import { insertArchiveRequest, markFinished } from '../../src/archives/archive-request.repository.js';
import { UNCONFIRMED_REQUEST_TIMEOUT_MS } from '../../src/archives/orphan-recovery.js';
import type { User } from '../../src/users/user.repository.js';
import { startBackupHost, type BackupHostFixture } from '../backup-host/fixture.js';
import { rawExec } from '../backup-host/ssh-exec.js';
import { createUser } from '../harness/users.js';
import {
  askForArchive,
  HOLD_FILE,
  pollUntil,
  releaseBuild,
  requestRow,
  sendLinks,
  signedIn,
  slowTar,
  startArchiveWorld,
  type ArchiveWorld,
} from './archive-world.js';

let host: BackupHostFixture;
let world: ArchiveWorld;
let tarDir: string;

beforeAll(async () => {
  tarDir = await mkdtemp(join(tmpdir(), 'archway-orphan-'));
  // The real gate, sudo and dispatcher behind a private sshd; tar held while a snapshot holds HOLD_FILE.
  host = await startBackupHost({ withNginx: false, dispatcherSettings: { tarPath: slowTar(tarDir), progressIntervalMs: 10 } });
  world = await startArchiveWorld({ backupHost: host.portalSettings });
}, 60_000);

afterAll(async () => {
  await world?.close();
  await host?.stop();
  if (tarDir) await rm(tarDir, { recursive: true, force: true });
});

/** A snapshot on the backup host, held (its build waits) until releaseBuild. */
function snapshotOnHost(customer: string, name: string, held = true): string {
  const dir = join(host.backupRoot, customer, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'dump.sql'), `-- ${customer} ${name}\n`.repeat(2000));
  if (held) writeFileSync(join(dir, HOLD_FILE), '');
  return dir;
}

/**
 * The crash window, as the portal leaves it: the request row inserted and committed, archive.create
 * answered by the backup host, and the process gone before it stored the archive id.
 */
async function portalDiesAfterCreate(user: User, snapshot: string): Promise<{ requestId: string; archiveId: string }> {
  const customer = user.domain!;
  const row = await insertArchiveRequest(world.app.ctx.database.db, {
    userId: user.id,
    backupHost: 'default',
    customer,
    snapshot,
    ip: '198.51.100.7',
    now: world.clock.now(),
  });
  const { archiveId } = await world.app.ctx.backupHosts.use('default').createArchive({ customer, snapshot });
  return { requestId: row!.id, archiveId };
}

/** The same, past the cut-off, with the request given up (as a host unreachable then leaves it): the build runs on. */
async function orphanGivenUp(user: User, snapshot: string): Promise<string> {
  const { requestId, archiveId } = await portalDiesAfterCreate(user, snapshot);
  world.clock.advance(UNCONFIRMED_REQUEST_TIMEOUT_MS + 1_000);
  await markFinished(world.app.ctx.database.db, requestId, 'failed', 'interrupted', world.clock.now());
  return archiveId;
}

/** archive.list over SSH with the portal's key, as anyone holding that key could send it. */
async function listOverSsh(stdin: string, command = 'archive.list') {
  const out = await rawExec({
    host: host.sshd.host,
    port: host.sshd.port,
    username: host.user.name,
    privateKeyPath: host.portalKey.privateKeyPath,
    command,
    stdin,
  });
  let answer: any = null;
  try {
    answer = JSON.parse(out.stdout);
  } catch {
    // not one JSON object: left null for the test to see
  }
  return { ...out, answer };
}

async function hostStatus(customer: string, archiveId: string) {
  return world.app.ctx.backupHosts.use('default').archiveStatus({ customer, archiveId });
}

describe('a build the portal started but never recorded', () => {
  it('is adopted once the request is overdue: the customer sees it being made and gets the ready email', async () => {
    const user = await createUser(world.app);
    const snapshot = snapshotOnHost(user.domain!, 'daily.0');
    const { requestId, archiveId } = await portalDiesAfterCreate(user, 'daily.0');

    // Before the cut-off the request may still be waiting for a live archive.create: left alone.
    expect(await pollDueArchives(world.app.ctx, { now: () => world.clock.now() })).toContain('waiting');
    expect(await requestRow(world, requestId)).toMatchObject({ state: 'requested', archive_id: null });

    world.clock.advance(UNCONFIRMED_REQUEST_TIMEOUT_MS + 1_000);
    await pollDueArchives(world.app.ctx, { now: () => world.clock.now() });
    expect(await requestRow(world, requestId)).toMatchObject({ state: 'building', archive_id: archiveId, finished_at: null });
    expect(world.logText()).toContain('adopted its orphaned build');

    // The customer's page shows it being made, with the cancel button, not a failure.
    const client = await signedIn(world, user);
    const page = await client.get(`/archives/${requestId}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<dd id="archive-state">being made</dd>');
    expect(page.body).toContain(`action="/archives/${requestId}/cancel"`);

    releaseBuild(snapshot);
    await pollUntil(world, requestId, ['ready']);
    const mails = await sendLinks(world);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.to).toMatchObject({ value: [{ address: user.email }] });
    expect(mails[0]!.text).toContain(`/downloads/${requestId}?t=`);
    expect((await hostStatus(user.domain!, archiveId)).state).toBe('ready');
    // One build on the host for this customer, and it is the adopted one.
    const listed = await listOverSsh(JSON.stringify({ customer: user.domain }));
    expect(listed.answer.result.archives.map((a: { archiveId: string }) => a.archiveId)).toEqual([archiveId]);
  });

  it('is adopted by the next request for the same backup instead of "already being built"', async () => {
    const user = await createUser(world.app);
    const snapshot = snapshotOnHost(user.domain!, 'daily.0');
    const orphan = await orphanGivenUp(user, 'daily.0');

    // Before: 409 "already being built" until the orphan ended. Now the new request takes it over.
    const newId = await askForArchive(await signedIn(world, user), 'daily.0');
    expect(await requestRow(world, newId)).toMatchObject({ state: 'building', archive_id: orphan });

    releaseBuild(snapshot);
    await pollUntil(world, newId, ['ready']);
    const mails = await sendLinks(world);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.text).toContain(`/downloads/${newId}?t=`);
  });

  it('is cancelled when the next request is for another backup, which is then built', async () => {
    const user = await createUser(world.app);
    snapshotOnHost(user.domain!, 'daily.1');
    snapshotOnHost(user.domain!, 'daily.0', false);
    const orphan = await orphanGivenUp(user, 'daily.1');

    const newId = await askForArchive(await signedIn(world, user), 'daily.0');
    const row = await requestRow(world, newId);
    expect(row.state).toBe('building');
    expect(row.archive_id).not.toBe(orphan);
    expect((await hostStatus(user.domain!, orphan)).state).toBe('cancelled');
    await pollUntil(world, newId, ['ready']);
  });

  it('is not looked for too early: a new request right after a cancelled one may meet its own build still starting', async () => {
    const user = await createUser(world.app);
    snapshotOnHost(user.domain!, 'daily.0');
    const first = await portalDiesAfterCreate(user, 'daily.0');
    // Cancelled before the id was stored: to the portal, archive.create may still be on its way.
    await markFinished(world.app.ctx.database.db, first.requestId, 'cancelled', null, world.clock.now());
    const client = await signedIn(world, user);
    await client.get('/backups');
    const refused = await client.post('/archives', { snapshot: 'daily.0' });
    expect(refused.status).toBe(409);
    expect(refused.body).toContain('already being built');
    expect((await hostStatus(user.domain!, first.archiveId)).state).toBe('building');
    await world.app.ctx.backupHosts.use('default').cancelArchive({ customer: user.domain!, archiveId: first.archiveId });
  });

  it('never adopts an archive another request holds; with no build of its own the request fails as before', async () => {
    const user = await createUser(world.app);
    const snapshot = snapshotOnHost(user.domain!, 'daily.0');
    const earlier = await askForArchive(await signedIn(world, user), 'daily.0');
    releaseBuild(snapshot);
    await pollUntil(world, earlier, ['ready']);
    const readyId = (await requestRow(world, earlier)).archive_id;

    // The portal died between the insert and archive.create: the host never started a build for it.
    const row = await insertArchiveRequest(world.app.ctx.database.db, {
      userId: user.id,
      backupHost: 'default',
      customer: user.domain!,
      snapshot: 'daily.0',
      ip: '198.51.100.7',
      now: world.clock.now(),
    });
    world.clock.advance(UNCONFIRMED_REQUEST_TIMEOUT_MS + 1_000);
    await pollDueArchives(world.app.ctx, { now: () => world.clock.now() });
    expect(await requestRow(world, row!.id)).toMatchObject({
      state: 'failed',
      archive_id: null,
      failure_reason: 'The request was interrupted before the backup host confirmed it. Please ask again.',
    });
    expect(await requestRow(world, earlier)).toMatchObject({ state: 'ready', archive_id: readyId });
  });
});

describe('archive.list as an attacker with the portal key sends it', () => {
  it("lists only the named customer's live archives, never another customer's", async () => {
    const alice = await createUser(world.app);
    const bob = await createUser(world.app);
    snapshotOnHost(alice.domain!, 'daily.0');
    snapshotOnHost(bob.domain!, 'daily.0');
    const a = await portalDiesAfterCreate(alice, 'daily.0');
    const b = await portalDiesAfterCreate(bob, 'daily.0');

    const forAlice = await listOverSsh(JSON.stringify({ customer: alice.domain }));
    expect(forAlice.code).toBe(0);
    expect(forAlice.answer).toEqual({
      ok: true,
      result: { archives: [{ archiveId: a.archiveId, snapshot: 'daily.0', state: 'building', createdAt: expect.any(String) }] },
    });
    expect(forAlice.stdout).not.toContain(b.archiveId);
    const unknown = await listOverSsh(JSON.stringify({ customer: 'nobody-here.example.org' }));
    expect(unknown.answer).toEqual({ ok: true, result: { archives: [] } });
    await world.app.ctx.backupHosts.use('default').cancelArchive({ customer: alice.domain!, archiveId: a.archiveId });
    await world.app.ctx.backupHosts.use('default').cancelArchive({ customer: bob.domain!, archiveId: b.archiveId });
  });

  it.each([
    ['no customer', '{}'],
    ['a path instead of a customer', JSON.stringify({ customer: '../other.example.org' })],
    ['a customer in capitals', JSON.stringify({ customer: 'Site.Example.ORG' })],
    ['a customer with a trailing newline', JSON.stringify({ customer: 'site.example.org\n' })],
    ['an extra snapshot field', JSON.stringify({ customer: 'site.example.org', snapshot: 'daily.0' })],
    ['an extra archive id', JSON.stringify({ customer: 'site.example.org', archiveId: '0'.repeat(32) })],
    ['a number for the customer', JSON.stringify({ customer: 42 })],
    ['an array', JSON.stringify([{ customer: 'site.example.org' }])],
    ['not JSON', 'customer=site.example.org'],
    ['a request over the size cap', JSON.stringify({ customer: 'site.example.org', pad: 'x'.repeat(70_000) })],
  ])('refuses %s as a bad request, listing nothing', async (_name, stdin) => {
    const out = await listOverSsh(stdin);
    expect(out.code).toBe(1);
    expect(out.answer).toMatchObject({ ok: false, error: { code: 'refused', reason: 'bad_request' } });
    expect(out.stdout).not.toMatch(/[0-9a-f]{32}/);
  });

  it('refuses the action with an extra word on the command line at the gate', async () => {
    const out = await listOverSsh(JSON.stringify({ customer: 'site.example.org' }), 'archive.list site.example.org');
    expect(out.code).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).toContain('not an allowed action');
  });
});
