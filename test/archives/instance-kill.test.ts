// Two real `archway serve` processes on one PostgreSQL and one backup host: one is SIGKILLed mid-job, the other finishes every job once.
import { fleetOfOne } from '../../src/config.js';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollDueArchives, POLL_LEASE_MS } from '../../src/archives/archive-poller.js';
import { EVENT_SYNC_LEASE_MS } from '../../src/archives/event-sync.js';
import { LINK_MAIL_LEASE_MS } from '../../src/archives/link-mailer.js';
import type { User } from '../../src/users/user.repository.js';
import { backupHostFromSettings } from '../../src/backup-host/index.js';
import { startBackupHost, type BackupHostFixture } from '../backup-host/fixture.js';
import { httpGet } from '../backup-host/http-get.js';
import { TEST_SECRETS } from '../harness/app.js';
import { startServer, type RunningServer } from '../harness/cli.js';
import { eventually } from '../harness/eventually.js';
import { startScriptedSmtp, type ScriptedSmtp } from '../harness/smtp-scripted.js';
import { createUser, PASSWORD } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { askForArchive } from './archive-world.js';

const PUBLIC_URL = 'https://portal.example.net';
/** The backup host calls the gate holds while their hold file exists: the poll's and the event sync's. */
const HELD_ACTIONS = ['archive.status', 'archive.statuses', 'events.since'] as const;

let host: BackupHostFixture;
let world: PortalWorld;
let smtp: ScriptedSmtp;
let holds: string;
const servers: RunningServer[] = [];
let releaseFirstMail: () => void = () => undefined;
const firstMailHeld = new Promise<void>((resolve) => (releaseFirstMail = resolve));

/**
 * Puts a wrapper in front of the gate: a call of a held action writes a sentinel file and waits
 * while its hold file exists, then goes on to the real gate. The backup host's own programs are unchanged.
 */
function holdingGate(): string {
  const dir = join(host.base, 'holds');
  // The gate runs as the SSH user, who writes the sentinels here.
  mkdirSync(dir);
  chmodSync(dir, 0o777);
  renameSync(host.gatePath, `${host.gatePath}.real`);
  writeFileSync(
    host.gatePath,
    `#!/bin/sh
action="\${SSH_ORIGINAL_COMMAND-}"
case "$action" in
  ${HELD_ACTIONS.join('|')})
    if [ -e "${dir}/hold-$action" ]; then
      : > "${dir}/held-$action.$$"
      while [ -e "${dir}/hold-$action" ]; do sleep 0.05; done
    fi ;;
esac
exec "${host.gatePath}.real"
`,
    { mode: 0o755 },
  );
  return dir;
}

const heldCalls = (action: string) => readdirSync(holds).filter((f) => f.startsWith(`held-${action}.`)).length;

function serverEnv(): Record<string, string> {
  const s = host.portalSettings;
  return {
    ...TEST_SECRETS,
    ARCHWAY_DATABASE_URL: world.database.url,
    ARCHWAY_SMTP_URL: smtp.url,
    ARCHWAY_PUBLIC_URL: PUBLIC_URL,
    ARCHWAY_REQUIRE_HTTPS: 'false',
    ARCHWAY_BACKUP_HOST: s.host,
    ARCHWAY_BACKUP_HOST_PORT: String(s.port),
    ARCHWAY_BACKUP_HOST_USER: s.user,
    ARCHWAY_BACKUP_HOST_KEY_FILE: s.privateKeyPath,
    ARCHWAY_BACKUP_HOST_FINGERPRINT: s.hostKeyFingerprint,
  };
}

async function startInstance(): Promise<RunningServer> {
  const server = await startServer({ cwd: mkdtempSync(join(tmpdir(), 'archway-serve-')), env: serverEnv() });
  servers.push(server);
  return server;
}

function makeSnapshot(domain: string): void {
  const dir = join(host.backupRoot, domain, 'daily.0');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'site.sql'), randomBytes(256 * 1024));
}

async function signedIn(user: User): Promise<WebClient> {
  // The download link is bound to this address, and httpGet fetches it from there.
  const client = new WebClient(world.app, { remoteAddress: '127.0.0.1' });
  const answer = await client.signIn(user.email, PASSWORD);
  if (answer.status !== 303) throw new Error(`sign-in failed with ${answer.status}`);
  return client;
}

const row = (id: string) =>
  world.app.ctx.database.db.selectFrom('archive_requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const syncRow = () => world.app.ctx.database.db.selectFrom('backup_host_sync').selectAll().executeTakeFirstOrThrow();
const linkSentAudits = async (userId: string) =>
  (
    await world.app.ctx.database.db
      .selectFrom('audit_log')
      .select('id')
      .where('action', '=', 'archive.link_sent')
      .where('subject', '=', userId)
      .execute()
  ).length;

async function tokenIn(raw: string, requestId: string): Promise<string> {
  const text = (await simpleParser(raw)).text ?? '';
  const token = new RegExp(`/downloads/${requestId}\\?t=([A-Za-z0-9_-]{43})`).exec(text)?.[1];
  if (token === undefined) throw new Error(`no link to ${requestId} in: ${text}`);
  return token;
}

beforeAll(async () => {
  host = await startBackupHost({ dispatcherSettings: { progressIntervalMs: 20, watchPollMs: 50 } });
  await host.startWatch();
  holds = holdingGate();
  world = await startPortalWorld({ env: { ARCHWAY_PUBLIC_URL: PUBLIC_URL }, overrides: { backupHosts: fleetOfOne(host.portalSettings) } });
  // The first message is held after its DATA, before "250": its sender is mid-send when it is killed.
  let first = true;
  smtp = await startScriptedSmtp({
    mode: 'hold',
    beforeAccept: () => {
      const hold = first ? firstMailHeld : Promise.resolve();
      first = false;
      return hold;
    },
  });
}, 120_000);

afterAll(async () => {
  releaseFirstMail();
  for (const server of servers) if (server.child.exitCode === null && server.child.signalCode === null) await server.stop('SIGKILL');
  await smtp?.close();
  await world?.close();
  await host?.stop();
});

describe('two portal instances, one killed mid-job', () => {
  it('the other finishes the poll, the link email and the event sync page once each; the customer gets one working link', async () => {
    // Work for each job: nora's archive is ready and its link email due; otto's build waits for a poll.
    const nora = await createUser(world.app, { domain: 'nora.example.org' });
    const otto = await createUser(world.app, { domain: 'otto.example.org' });
    makeSnapshot(nora.domain!);
    makeSnapshot(otto.domain!);
    const noraId = await askForArchive(await signedIn(nora), 'daily.0');
    await eventually(
      "nora's archive to be ready",
      async () => {
        await pollDueArchives(world.app.ctx);
        return (await row(noraId)).state === 'ready';
      },
      { timeoutMs: 60_000, everyMs: 500 },
    );
    const ottoId = await askForArchive(await signedIn(otto), 'daily.0');
    const client = backupHostFromSettings(host.portalSettings);
    await eventually('otto’s build to finish on the backup host', async () => {
      const status = await client.archiveStatus({ customer: otto.domain!, archiveId: (await row(ottoId)).archive_id! });
      return status.state === 'ready';
    });
    expect((await row(ottoId)).state).not.toBe('ready');

    // Instance A takes all three jobs and is held in each: two backup host calls at the gate, the email at SMTP.
    for (const action of HELD_ACTIONS) writeFileSync(join(holds, `hold-${action}`), '');
    const a = await startInstance();
    await smtp.waitForStalls(1);
    await eventually('A’s poll held at the backup host', () => heldCalls('archive.status') + heldCalls('archive.statuses') === 1);
    await eventually('A’s event sync page held at the backup host', () => heldCalls('events.since') === 1);
    const noraAtKill = await row(noraId);
    const ottoAtKill = await row(ottoId);
    const syncAtKill = await syncRow();
    const killedAt = Date.now();
    // Each job's lease is the whole bound on a takeover: the poll's, the email's, the sync's.
    expect(ottoAtKill.next_poll_at!.getTime() - killedAt).toBeGreaterThan(POLL_LEASE_MS - 30_000);
    expect(ottoAtKill.next_poll_at!.getTime() - killedAt).toBeLessThanOrEqual(POLL_LEASE_MS);
    expect(noraAtKill).toMatchObject({ notify_attempts: 1, notified_at: null });
    expect(noraAtKill.notify_due_at!.getTime() - killedAt).toBeLessThanOrEqual(LINK_MAIL_LEASE_MS);
    expect(syncAtKill.leased_until!.getTime() - killedAt).toBeLessThanOrEqual(EVENT_SYNC_LEASE_MS);
    expect(syncAtKill.leased_until!.getTime() - killedAt).toBeGreaterThan(EVENT_SYNC_LEASE_MS - 60_000);

    // Instance B starts while A holds the jobs, then A is killed with nothing released.
    const b = await startInstance();
    await a.stop('SIGKILL');
    await eventually('the killed sender’s SMTP connection to close', () => smtp.openConnections() === 0);
    releaseFirstMail();
    await firstMailHeld;
    // The server's answer to the released message goes nowhere: nothing was accepted.
    await new Promise((resolve) => setImmediate(resolve));
    expect(smtp.accepted).toEqual([]);
    expect(smtp.received).toHaveLength(1);
    for (const action of HELD_ACTIONS) rmSync(join(holds, `hold-${action}`));

    // The dead holder's leases stand until they run out (60 s, 3 min, 90 s); here they run out at once.
    await world.app.ctx.database.db.updateTable('archive_requests').set({ next_poll_at: new Date() }).where('id', '=', ottoId).execute();
    await world.app.ctx.database.db.updateTable('archive_requests').set({ notify_due_at: new Date() }).where('id', '=', noraId).execute();
    await world.app.ctx.database.db.updateTable('backup_host_sync').set({ leased_until: new Date() }).execute();

    // B finishes each job once: otto's poll, both link emails, the events up to the host's newest.
    await eventually(
      'otto’s archive ready and both link emails accepted',
      async () => (await row(ottoId)).state === 'ready' && smtp.accepted.length === 2,
      {
        timeoutMs: 60_000,
      },
    );
    const { lastSeq } = await client.eventsSince({ after: 0, limit: 1000 });
    await eventually('B to copy the events A was reading', async () => Number((await syncRow()).last_seq) >= lastSeq, {
      timeoutMs: 60_000,
    });
    // Every event once, none skipped: seq 1..n with no gap (the primary key refuses a second copy).
    const stored = (await world.app.ctx.database.db.selectFrom('backup_host_events').select('seq').orderBy('seq').execute()).map((e) =>
      Number(e.seq),
    );
    expect(stored).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1));
    expect(stored.length).toBeGreaterThanOrEqual(lastSeq);
    const to = (user: User) => smtp.accepted.filter((m) => m.includes(user.email));
    expect(to(nora)).toHaveLength(1);
    expect(to(otto)).toHaveLength(1);
    expect(await row(noraId)).toMatchObject({ notify_attempts: 2, notify_due_at: null, last_notify_error: null });
    expect(await row(ottoId)).toMatchObject({ notify_attempts: 1, notify_due_at: null });
    expect(await linkSentAudits(nora.id)).toBe(1);
    expect(await linkSentAudits(otto.id)).toBe(1);

    // Nora's one accepted email gives a link that downloads through NGINX; the killed send's link does not.
    const noraRow = await row(noraId);
    const customer = await signedIn(nora);
    const lost = await tokenIn(smtp.received[0]!, noraId);
    await customer.get(`/downloads/${noraId}?t=${lost}`);
    const refused = await customer.get(`/downloads/${noraId}`);
    expect(refused.body).not.toContain('id="download-link"');
    const token = await tokenIn(to(nora)[0]!, noraId);
    expect(token).not.toBe(lost);
    const moved = await customer.get(`/downloads/${noraId}?t=${token}`);
    expect(moved.status).toBe(303);
    const page = await customer.get(`/downloads/${noraId}`);
    const url = /id="download-link" href="([^"]+)"/.exec(page.body)?.[1]?.replace(/&amp;/g, '&');
    expect(url, page.body).toMatch(new RegExp(`^${host.downloadBaseUrl.replace(/[.:/]/g, '\\$&')}/dl/`));
    const fetched = await httpGet(url!, { localAddress: '127.0.0.1' });
    expect(fetched.status).toBe(200);
    expect(fetched.sha256).toBe(noraRow.sha256);
    expect(existsSync(join(host.archiveRoot, `${noraRow.archive_id}.tar`))).toBe(true);

    expect(b.output()).not.toContain('Unhandled');
    expect(await b.stop()).toBe(0);
    expect(readFileSync(join(host.stateDir, 'dispatcher.log'), 'utf8')).not.toContain(token);
  }, 240_000);
});
