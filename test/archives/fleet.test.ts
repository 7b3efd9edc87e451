// Two real backup hosts (sshd, gate, sudo, dispatcher, NGINX) on 127.0.0.2 and 127.0.0.3 behind one portal: each customer's archives stay on their own host.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollDueArchives } from '../../src/archives/archive-poller.js';
import { NOT_SET_UP_MESSAGE } from '../../src/archives/archive.routes.js';
import { syncBackupHostEvents } from '../../src/archives/event-sync.js';
import { sendDueLinks } from '../../src/archives/link-mailer.js';
import type { User } from '../../src/users/user.repository.js';
import { startBackupHost, type BackupHostFixture, type WatchProcess } from '../backup-host/fixture.js';
import { httpGet } from '../backup-host/http-get.js';
import { buildTestApp } from '../harness/app.js';
import { eventually } from '../harness/eventually.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { createOperator, createUser, PASSWORD, signInOperator } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';

let east: BackupHostFixture;
let west: BackupHostFixture;
const watches: WatchProcess[] = [];
/** West is reached through this proxy, so the test can take it down and bring it back. */
let westProxy: TcpProxy;
let world: PortalWorld;
let dir: string;
let alice: User;
let bob: User;

const FAST = { progressIntervalMs: 20, watchPollMs: 50 };

/** One [[hosts]] table of the TOML hosts file. */
function hostEntry(name: string, host: BackupHostFixture, at: { address: string; port: number }): string {
  const s = host.portalSettings;
  return [
    '[[hosts]]',
    `name = "${name}"`,
    `address = "${at.address}"`,
    `port = ${at.port}`,
    `user = "${s.user}"`,
    `keyFile = "${s.privateKeyPath}"`,
    `fingerprint = "${s.hostKeyFingerprint}"`,
    `downloadsUrl = "${host.downloadBaseUrl}"`,
    '',
  ].join('\n');
}

async function snapshot(host: BackupHostFixture, customer: string, name: string, bytes: number): Promise<void> {
  const dirPath = join(host.backupRoot, customer, name);
  await mkdir(dirPath, { recursive: true });
  await writeFile(join(dirPath, 'data.bin'), randomBytes(bytes));
}

const db = () => world.app.ctx.database.db;
const requestRow = (id: string) => db().selectFrom('archive_requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const snapshotsOn = (html: string) => [...html.matchAll(/name="snapshot" id="snapshot-\d+" value="([^"]+)"/g)].map((m) => m[1]);

async function signedIn(user: User, app = world.app): Promise<WebClient> {
  const client = new WebClient(app);
  await client.signIn(user.email, PASSWORD);
  return client;
}

async function ask(client: WebClient, snapshotName: string): Promise<string> {
  await client.get('/backups');
  const answer = await client.post('/archives', { snapshot: snapshotName });
  expect(answer.status).toBe(303);
  return /^\/archives\/([0-9a-f-]{36})$/.exec(answer.location ?? '')![1]!;
}

beforeAll(async () => {
  [east, west] = await Promise.all([
    startBackupHost({ listenAddress: '127.0.0.2', dispatcherSettings: FAST }),
    startBackupHost({ listenAddress: '127.0.0.3', dispatcherSettings: FAST }),
  ]);
  watches.push(await east.startWatch(), await west.startWatch());
  westProxy = await startTcpProxy({ host: west.sshd.host, port: west.sshd.port });
  dir = mkdtempSync(join(tmpdir(), 'archway-fleet-'));
  const hostsFile = join(dir, 'hosts.toml');
  writeFileSync(
    hostsFile,
    [
      hostEntry('east', east, { address: east.sshd.host, port: east.sshd.port }),
      hostEntry('west', west, { address: '127.0.0.1', port: westProxy.port }),
    ].join('\n'),
  );
  world = await startPortalWorld({
    smtp: 'up',
    env: { ARCHWAY_PUBLIC_URL: 'https://portal.example.net', ARCHWAY_BACKUP_HOSTS_FILE: hostsFile },
  });

  alice = await createUser(world.app, { email: 'alice@east.example', domain: 'alice.example.org', backupHost: 'east' });
  bob = await createUser(world.app, { email: 'bob@west.example', domain: 'bob.example.org', backupHost: 'west' });
  await snapshot(east, 'alice.example.org', 'daily.0', 300_000);
  await snapshot(west, 'bob.example.org', 'daily.0', 500_000);
  // A folder of Bob's name on the other host: never his, whatever it holds.
  await snapshot(east, 'bob.example.org', 'stale.9', 1_000);
}, 120_000);

afterAll(async () => {
  await world?.close();
  await westProxy?.close();
  for (const w of watches) await w.stop();
  await east?.stop();
  await west?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a portal with two backup hosts', () => {
  it('lists, builds, mails and serves each customer from their own host; a host that is down delays only its own customers', async () => {
    expect(world.app.ctx.backupHosts.names).toEqual(['east', 'west']);
    const aliceClient = await signedIn(alice);
    const bobClient = await signedIn(bob);
    expect(snapshotsOn((await aliceClient.get('/backups')).body)).toEqual(['daily.0']);
    expect(snapshotsOn((await bobClient.get('/backups')).body)).toEqual(['daily.0']);
    // East's folder of Bob's name is not what Bob sees, and he cannot ask for it either.
    await bobClient.get('/backups');
    expect((await bobClient.post('/archives', { snapshot: 'stale.9' })).status).toBe(400);

    const aliceId = await ask(aliceClient, 'daily.0');
    const bobId = await ask(bobClient, 'daily.0');
    expect((await requestRow(aliceId)).backup_host).toBe('east');
    expect((await requestRow(bobId)).backup_host).toBe('west');

    // West goes down while both build: Bob's poll fails and waits, Alice's goes on.
    westProxy.refuse();
    world.clock.advance(5_000);
    const outcomes = await pollDueArchives(world.app.ctx, { now: () => world.clock.now() });
    expect(outcomes).toContain('error');
    expect((await requestRow(bobId)).poll_failures).toBe(1);
    expect((await requestRow(aliceId)).poll_failures).toBe(0);
    expect((await bobClient.get('/backups')).body).toContain('The backup service is not available right now');
    expect(snapshotsOn((await aliceClient.get('/backups')).body)).toEqual(['daily.0']);
    westProxy.accept();

    // West is back: nothing was lost, both archives become ready.
    await eventually(
      'both archives to be ready',
      async () => {
        world.clock.advance(60_000);
        await pollDueArchives(world.app.ctx, { now: () => world.clock.now() });
        const states = [(await requestRow(aliceId)).state, (await requestRow(bobId)).state];
        if (states.includes('failed')) throw new Error(`a build failed: ${states.join(', ')}`);
        return states.every((s) => s === 'ready');
      },
      { timeoutMs: 60_000 },
    );
    const aliceRow = await requestRow(aliceId);
    const bobRow = await requestRow(bobId);
    // Each archive was built on its customer's host, and only there.
    expect(existsSync(join(east.archiveRoot, `${aliceRow.archive_id}.tar`))).toBe(true);
    expect(existsSync(join(west.archiveRoot, `${aliceRow.archive_id}.tar`))).toBe(false);
    expect(existsSync(join(west.archiveRoot, `${bobRow.archive_id}.tar`))).toBe(true);
    expect(existsSync(join(east.archiveRoot, `${bobRow.archive_id}.tar`))).toBe(false);
    // East does not know West's archive, even given its exact id and customer.
    await expect(
      world.app.ctx.backupHosts.use('east').archiveStatus({ customer: 'bob.example.org', archiveId: bobRow.archive_id! }),
    ).rejects.toMatchObject({ code: 'not_found' });

    // A host that reports another host's archive as downloaded changes nothing: events speak for their own host.
    const eastCursor = (await db().selectFrom('backup_host_sync').select('last_seq').where('host', '=', 'east').executeTakeFirst())
      ?.last_seq;
    const forged = await syncBackupHostEvents({
      db: db(),
      host: 'east',
      clock: world.clock,
      publicUrl: 'https://portal.example.net',
      mail: world.app.ctx.mail,
      backupHost: {
        eventsSince: async () => ({
          lastSeq: 1_000_000,
          events: [
            {
              seq: 1_000_000,
              time: new Date().toISOString(),
              type: 'download.completed',
              customer: 'bob.example.org',
              archiveId: bobRow.archive_id!,
              ip: '127.0.0.1',
              bytes: 1,
              detail: null,
            },
          ],
        }),
      },
    });
    expect(forged).toMatchObject({ outcome: 'synced', received: 1, downloaded: 0 });
    expect((await requestRow(bobId)).state).toBe('ready');
    // Put East's cursor back where the real host left it.
    await db().deleteFrom('backup_host_events').where('host', '=', 'east').where('seq', '=', '1000000').execute();
    await db()
      .updateTable('backup_host_sync')
      .set({ last_seq: eastCursor ?? 0 })
      .where('host', '=', 'east')
      .execute();

    // Two link emails, each link issued by its own host's NGINX, each archive byte-identical.
    expect((await sendDueLinks(world.app.ctx, { now: () => world.clock.now() })).sort()).toEqual(['sent', 'sent']);
    const mails = await world.sink.waitForMessages(2);
    for (const [client, row, host] of [
      [aliceClient, aliceRow, east],
      [bobClient, bobRow, west],
    ] as const) {
      const token = mails.map((m) => new RegExp(`/downloads/${row.id}\\?t=([A-Za-z0-9_-]{43})`).exec(m.text ?? '')?.[1]).find(Boolean);
      expect(token).toBeDefined();
      expect((await client.get(`/downloads/${row.id}?t=${token}`)).status).toBe(303);
      const page = await client.get(`/downloads/${row.id}`);
      expect(page.status).toBe(200);
      const url = /id="download-link" href="([^"]+)"/.exec(page.body)![1]!.replaceAll('&amp;', '&');
      expect(url.startsWith(`${host.downloadBaseUrl}/dl/`)).toBe(true);
      const fetched = await httpGet(url, { localAddress: '127.0.0.1', discardBody: true });
      expect(fetched.status).toBe(200);
      expect(fetched.sha256).toBe(row.sha256);
    }

    // Each host's events come through its own cursor and mark its own customer's download.
    await eventually(
      'both downloads to be recorded',
      async () => {
        for (const host of ['east', 'west']) {
          await syncBackupHostEvents({
            db: db(),
            host,
            backupHost: world.app.ctx.backupHosts.use(host),
            clock: world.clock,
            publicUrl: 'https://portal.example.net',
            mail: world.app.ctx.mail,
          });
        }
        return (await requestRow(aliceId)).state === 'downloaded' && (await requestRow(bobId)).state === 'downloaded';
      },
      { timeoutMs: 30_000 },
    );
    const sync = await db().selectFrom('backup_host_sync').select(['host', 'last_error']).orderBy('host').execute();
    expect(sync).toEqual([
      { host: 'east', last_error: null },
      { host: 'west', last_error: null },
    ]);
    const owners = await db()
      .selectFrom('backup_host_events')
      .select(['host', 'customer'])
      .where('type', '=', 'download.completed')
      .orderBy('host')
      .execute();
    expect(owners).toEqual([
      { host: 'east', customer: 'alice.example.org' },
      { host: 'west', customer: 'bob.example.org' },
    ]);
  }, 180_000);

  it('tells a customer with no host, or a host the fleet lacks, that their backups are not set up, and the operator why', async () => {
    const carol = await createUser(world.app, { email: 'carol@nohost.example', domain: 'carol.example.org', backupHost: null });
    const dave = await createUser(world.app, { email: 'dave@north.example', domain: 'dave.example.org', backupHost: 'north' });
    for (const user of [carol, dave]) {
      const client = await signedIn(user);
      const page = await client.get('/backups');
      expect(page.status).toBe(200);
      expect(page.body).toContain(NOT_SET_UP_MESSAGE);
      expect(snapshotsOn(page.body)).toEqual([]);
      const refused = await client.post('/archives', { snapshot: 'daily.0' });
      expect(refused.status).toBe(409);
      expect(refused.body).toContain(NOT_SET_UP_MESSAGE);
      expect(await db().selectFrom('archive_requests').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    }

    const { operator, secret } = await createOperator(world.app);
    const desk = new WebClient(world.app, { remoteAddress: '192.0.2.250' });
    await signInOperator(world.app, desk, operator.email, secret);
    const problem = async (user: User) =>
      /id="backup-host-problem">([^<]*)</.exec((await desk.get(`/operator/customers/${user.id}`)).body)?.[1] ?? null;
    expect(await problem(carol)).toContain('no backup host is named and the fleet has no default');
    expect(await problem(dave)).toContain('this host is not in the portal&#39;s fleet');
    expect(await problem(alice)).toBeNull();
    // The requests page shows each host's copy of events.
    const requests = await desk.get('/operator/requests');
    expect(requests.body).toMatch(/<th scope="row">east<\/th>/);
    expect(requests.body).toMatch(/<th scope="row">west<\/th>/);
  });

  it("blocks only the host whose key is not the pinned one: the other host's customers are unaffected", async () => {
    // A second portal instance on the same database whose hosts file pins East's key for West.
    const wrongFile = join(dir, 'wrong-west-key.json');
    const s = (h: BackupHostFixture, fingerprint: string) => ({
      address: h.sshd.host,
      port: h.sshd.port,
      user: h.portalSettings.user,
      keyFile: h.portalSettings.privateKeyPath,
      fingerprint,
      downloadsUrl: h.downloadBaseUrl,
    });
    writeFileSync(
      wrongFile,
      JSON.stringify({
        hosts: [
          { name: 'east', ...s(east, east.portalSettings.hostKeyFingerprint) },
          { name: 'west', ...s(west, east.portalSettings.hostKeyFingerprint) },
        ],
      }),
    );
    const second = await buildTestApp(world.database.handle, world.database.url, {
      ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
      ARCHWAY_BACKUP_HOSTS_FILE: wrongFile,
    });
    // Customers who have not downloaded yet: the backups page lists rather than shows a cooldown.
    const erin = await createUser(world.app, { email: 'erin@east.example', domain: 'erin.example.org', backupHost: 'east' });
    const fred = await createUser(world.app, { email: 'fred@west.example', domain: 'fred.example.org', backupHost: 'west' });
    await snapshot(east, 'erin.example.org', 'daily.0', 1_000);
    await snapshot(west, 'fred.example.org', 'daily.0', 1_000);
    try {
      expect(snapshotsOn((await (await signedIn(erin, second.app)).get('/backups')).body)).toEqual(['daily.0']);
      const fredPage = await (await signedIn(fred, second.app)).get('/backups');
      expect(fredPage.body).toContain('The backup service is not available right now');
      // The same customer through the first instance, with the right key, is served.
      expect(snapshotsOn((await (await signedIn(fred)).get('/backups')).body)).toEqual(['daily.0']);
      expect(second.logText()).toMatch(/BackupHostKeyMismatch/);
    } finally {
      await second.app.close();
    }
  });
});
