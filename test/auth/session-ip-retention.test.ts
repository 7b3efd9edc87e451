import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteExpiredSessions, purgeOldIps, startIpRetentionJob } from '../../src/jobs/retention.job.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { createUser, PASSWORD } from '../harness/users.js';

let subject: PortalWorld;
const DAY = 86_400_000;

beforeAll(async () => {
  subject = await startPortalWorld({ env: { ARCHWAY_IP_RETENTION_DAYS: '30' } });
});
afterAll(async () => {
  await subject.close();
});

const db = () => subject.app.ctx.database.db;

describe('the IP retention purge', () => {
  it('forgets addresses older than 30 days and keeps the newer ones', async () => {
    const user = await createUser(subject.app);
    const now = subject.clock.now().getTime();
    const at = (daysAgo: number) => new Date(now - daysAgo * DAY);
    await db()
      .insertInto('sign_in_attempts')
      .values([
        { at: at(31), email_tried: user.email, user_id: user.id, ip: '198.51.100.1', outcome: 'success', reason: 'password' },
        { at: at(31), email_tried: 'typo@exmaple.net', user_id: null, ip: '198.51.100.2', outcome: 'failure', reason: 'unknown_email' },
        { at: at(29), email_tried: user.email, user_id: user.id, ip: '198.51.100.3', outcome: 'success', reason: 'password' },
        { at: at(29), email_tried: 'typo2@exmaple.net', user_id: null, ip: '198.51.100.4', outcome: 'failure', reason: 'unknown_email' },
      ])
      .execute();
    await db()
      .insertInto('blocks')
      .values([
        { scope: 'ip', key: '198.51.100.2', until: at(30.5), level: 1, created_at: at(31) },
        { scope: 'ip', key: '198.51.100.4', until: at(28), level: 1, created_at: at(29) },
      ])
      .execute();
    await db()
      .insertInto('audit_log')
      .values({ at: at(40), actor: user.id, action: 'test.old', subject: null, ip: '198.51.100.5', detail: '{}' })
      .execute();
    await db()
      .insertInto('archive_requests')
      .values([
        {
          user_id: user.id,
          customer: 'social.example.net',
          snapshot: 'daily.3',
          archive_id: 'a1'.repeat(16),
          state: 'expired',
          requested_at: at(31),
          requested_ip: '198.51.100.8',
        },
        {
          user_id: user.id,
          customer: 'social.example.net',
          snapshot: 'daily.0',
          archive_id: 'a2'.repeat(16),
          state: 'ready',
          requested_at: at(29),
          requested_ip: '2001:db8::8',
        },
      ])
      .execute();
    const event = {
      host: 'default',
      customer: 'social.example.net',
      archive_id: 'a1'.repeat(16),
      type: 'link.issued',
      bytes: null,
      detail: null,
    };
    await db()
      .insertInto('backup_host_events')
      .values([
        { ...event, seq: 1, at: at(31), ip: '198.51.100.9' },
        { ...event, seq: 2, at: at(29), ip: '2001:db8::9' },
      ])
      .execute();

    await db()
      .insertInto('request_log')
      .values([
        {
          at: at(31),
          user_id: null,
          ip: '198.51.100.10',
          kind: 'sign-in',
          event: 'password',
          outcome: 'failure',
          detail: '{"address":"unknown address #0badf00d","reason":"unknown_email"}',
        },
        {
          at: at(29),
          user_id: user.id,
          ip: '2001:db8::10',
          kind: 'sign-in',
          event: 'password',
          outcome: 'success',
          detail: '{"reason":"password"}',
        },
      ])
      .execute();

    const report = await purgeOldIps(db(), subject.clock, 30);
    expect(report).toEqual({
      signInAttempts: 2,
      sessions: 0,
      blocks: 1,
      auditLog: 1,
      archiveRequests: 1,
      backupHostEvents: 1,
      requestLog: 1,
    });

    const rows = await db().selectFrom('sign_in_attempts').select(['email_tried', 'ip', 'outcome']).orderBy('id').execute();
    expect(rows).toEqual([
      { email_tried: user.email, ip: null, outcome: 'success' },
      { email_tried: null, ip: null, outcome: 'failure' },
      { email_tried: user.email, ip: '198.51.100.3', outcome: 'success' },
      { email_tried: 'typo2@exmaple.net', ip: '198.51.100.4', outcome: 'failure' },
    ]);
    expect(await db().selectFrom('blocks').select('key').execute()).toEqual([{ key: '198.51.100.4' }]);
    // An audit row that old goes whole (the chain keeps its anchor; test/users/audit-chain.test.ts).
    expect(await db().selectFrom('audit_log').select('ip').where('action', '=', 'test.old').execute()).toEqual([]);
    // The requests and events themselves stay for the operator's log; only the older addresses go.
    expect(
      await db()
        .selectFrom('archive_requests')
        .select(['snapshot', 'requested_ip'])
        .where('user_id', '=', user.id)
        .orderBy('requested_at')
        .execute(),
    ).toEqual([
      { snapshot: 'daily.3', requested_ip: null },
      { snapshot: 'daily.0', requested_ip: '2001:db8::8' },
    ]);
    expect(await db().selectFrom('backup_host_events').select(['seq', 'ip']).orderBy('seq').execute()).toEqual([
      { seq: '1', ip: null },
      { seq: '2', ip: '2001:db8::9' },
    ]);

    // The log's older entry keeps what happened, without the address or the unknown address's fingerprint.
    expect(
      await db()
        .selectFrom('request_log')
        .select(['ip', 'detail'])
        .where('event', '=', 'password')
        .where('at', '<', at(28))
        .orderBy('at')
        .execute(),
    ).toEqual([
      { ip: null, detail: { reason: 'unknown_email' } },
      { ip: '2001:db8::10', detail: { reason: 'password' } },
    ]);

    // Nothing left to purge: running it again changes nothing.
    expect(await purgeOldIps(db(), subject.clock, 30)).toEqual({
      signInAttempts: 0,
      sessions: 0,
      blocks: 0,
      auditLog: 0,
      archiveRequests: 0,
      backupHostEvents: 0,
      requestLog: 0,
    });
  });

  it('reaches recorded sign-ins once the clock passes 30 days', async () => {
    const user = await createUser(subject.app);
    const client = new WebClient(subject.app, { remoteAddress: '203.0.113.61' });
    await client.signIn(user.email, PASSWORD);
    expect(await purgeOldIps(db(), subject.clock, 30)).toMatchObject({ signInAttempts: 0 });

    subject.clock.advance(30 * DAY + 60_000);
    const report = await purgeOldIps(db(), subject.clock, 30);
    expect(report.signInAttempts).toBeGreaterThanOrEqual(1);
    expect(report.sessions).toBeGreaterThanOrEqual(1);
    expect(await db().selectFrom('sign_in_attempts').select('ip').where('user_id', '=', user.id).execute()).toEqual([{ ip: null }]);
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('deletes sessions that expired and were never presented again', async () => {
    const user = await createUser(subject.app);
    await new WebClient(subject.app).signIn(user.email, PASSWORD);
    expect(await deleteExpiredSessions(db(), subject.clock, 24)).toBe(0);
    subject.clock.advanceMinutes(25);
    expect(await deleteExpiredSessions(db(), subject.clock, 24)).toBeGreaterThanOrEqual(1);
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('runs as a job at once, removes remember-me logins past their 5 days with their IPs, and logs what it did', async () => {
    const user = await createUser(subject.app);
    const now = subject.clock.now().getTime();
    const day = 86_400_000;
    const login = (series: string, createdDaysAgo: number) => ({
      user_id: user.id,
      series,
      token_hash: Buffer.alloc(32, 1),
      created_at: new Date(now - createdDaysAgo * day),
      last_used_at: new Date(now - createdDaysAgo * day),
      expires_at: new Date(now - createdDaysAgo * day + 5 * day),
      ip: '198.51.100.7',
    });
    await db()
      .insertInto('remember_logins')
      .values([login('expired-series', 6), login('live-series', 1)])
      .execute();

    const stop = startIpRetentionJob(subject.app.ctx, 60_000);
    try {
      await expect.poll(() => subject.logText(), { timeout: 20_000 }).toContain('IP retention purge done');
    } finally {
      await stop();
    }
    const left = await db().selectFrom('remember_logins').select(['series', 'ip']).where('user_id', '=', user.id).execute();
    expect(left).toEqual([{ series: 'live-series', ip: '198.51.100.7' }]);
    expect(subject.logText()).toMatch(/"rememberLogins":1\b/);
  });
});
