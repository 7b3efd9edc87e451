import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebClient } from '../harness/web-client.js';
import { startWorld } from './fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';
import { loadConfig } from '../../src/config.js';
import { loadConfig as loadDispatcherConfig } from '../../src/dispatcher/engine/config.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld({ ARCHWAY_MAIL_FROM: 'Provider <help@provider.example>', ARCHWAY_IP_RETENTION_DAYS: '21' });
});
afterAll(async () => world.close());

async function addPayment(userId: string, paidAt: string, amount: string, reference: string) {
  await world.app.ctx.database.db
    .insertInto('payments')
    .values({ user_id: userId, paid_at: new Date(paidAt), amount, currency: 'EUR', status: 'Completed', reference })
    .execute();
}

describe('the account page', () => {
  it('sends a visitor who is not signed in to the sign-in page', async () => {
    const page = await new WebClient(world.app).get('/account');
    expect(page.status).toBe(303);
    expect(page.location).toBe('/sign-in?next=%2Faccount');
  });

  it('shows the customer everything stored about them, and nothing of another customer', async () => {
    const me = await createUser(world.app, {
      email: 'ines@example.net',
      domain: 'ines.example.org',
      plan: 'medium',
      paypalSubscriptionId: 'I-INES0001',
      backupHost: 'backup-2.example.net',
    });
    const other = await createUser(world.app, {
      email: 'otto@example.net',
      domain: 'otto.example.org',
      plan: 'large',
      paypalSubscriptionId: 'I-OTTO0002',
      backupHost: 'backup-9.example.net',
    });
    await addPayment(me.id, '2024-01-05T10:00:00Z', '12.00', 'PAY-INES-JAN');
    await addPayment(me.id, '2024-02-05T10:00:00Z', '12.50', 'PAY-INES-FEB');
    await addPayment(other.id, '2024-01-07T10:00:00Z', '99.00', 'PAY-OTTO-JAN');

    // A failed and a successful sign-in from one address, and the other customer's from another.
    const attacker = new WebClient(world.app, { remoteAddress: '198.51.100.23' });
    expect((await attacker.signIn(me.email, 'Wrong-Password-1')).status).toBe(401);
    const otto = new WebClient(world.app, { remoteAddress: '192.0.2.99' });
    expect((await otto.signIn(other.email, PASSWORD)).status).toBe(303);
    const browser = new WebClient(world.app, { remoteAddress: '203.0.113.7', headers: { 'user-agent': 'TestBrowser/1.0' } });
    expect((await browser.signIn(me.email, PASSWORD)).status).toBe(303);

    const page = await browser.get('/account');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    const html = page.body;
    for (const fact of [
      '<dt>Email address</dt><dd>ines@example.net</dd>',
      '<dt>Installation domain</dt><dd>ines.example.org</dd>',
      '<dt>Plan</dt><dd>medium</dd>',
      '<dt>PayPal subscription id</dt><dd>I-INES0001</dd>',
      '<dt>Backup host</dt><dd>backup-2.example.net</dd>',
      '<dt>Status</dt><dd>active</dd>',
      '<tr><td>2024-02-05</td><td>12.50 EUR</td><td>Completed</td><td><code>PAY-INES-FEB</code></td></tr>',
      '<tr><td>2024-01-05</td><td>12.00 EUR</td><td>Completed</td><td><code>PAY-INES-JAN</code></td></tr>',
      '<td>203.0.113.7</td><td>signed in</td>',
      '<td>198.51.100.23</td><td>refused</td>',
      '<td>TestBrowser/1.0</td>',
      'Addresses are deleted after 21 days.',
      '<a href="mailto:help@provider.example">help@provider.example</a>',
    ]) {
      expect(html).toContain(fact);
    }
    expect(html.indexOf('PAY-INES-FEB')).toBeLessThan(html.indexOf('PAY-INES-JAN'));
    for (const foreign of ['otto', 'I-OTTO0002', 'backup-9', 'PAY-OTTO-JAN', '99.00', '192.0.2.99']) expect(html).not.toContain(foreign);
    expect(html).not.toContain('$argon2id$');
    expect(html).not.toContain(me.id);

    // And the other customer sees only theirs.
    const ottoPage = (await otto.get('/account')).body;
    expect(ottoPage).toContain('PAY-OTTO-JAN');
    expect(ottoPage).not.toContain('PAY-INES');
    expect(ottoPage).not.toContain('203.0.113.7');
  });

  it('explains how to ask for a new email address instead of offering a form', async () => {
    const me = await createUser(world.app);
    const browser = new WebClient(world.app);
    await browser.signIn(me.email, PASSWORD);
    const html = (await browser.get('/account')).body;
    expect(html).toContain('<h3>Changing your email address</h3>');
    expect(html).toContain('Write to <a href="mailto:help@provider.example">help@provider.example</a> from your current address');
    expect(html).not.toMatch(/<form[^>]*action="\/account/);
  });
});

describe('what we store, and the terms', () => {
  it('lists exactly the stored data and the IP retention from the settings', async () => {
    const page = await new WebClient(world.app).get('/what-we-store');
    expect(page.status).toBe(200);
    for (const item of ['email address', 'domain', 'plan', 'backup host', 'PayPal subscription id', 'payment history', 'IP address'])
      expect(page.body).toContain(item);
    expect(page.body).toContain('<strong>IP addresses are deleted after 21 days</strong>');
    expect(page.body).toContain('after 24 minutes without activity, after 12 hours at most');
    expect(page.body).toContain('We do not store your name, postal address, phone number, or any card or bank details.');
  });

  it('has a line for every table that can hold something about a user, so a new table cannot go unmentioned', async () => {
    const page = await new WebClient(world.app).get('/what-we-store');
    // Each table, and words of the page that cover it. A table missing here fails the test: add it to the page first.
    const coveredBy: Record<string, string> = {
      users: 'email address',
      payments: 'payment history',
      account_tokens: 'Links to set a password carry a secret',
      password_reset_requests: 'Each request for a password reset link',
      sessions: 'a session with a random identifier',
      sign_in_attempts: 'Every attempt to sign in',
      blocks: 'to stop people guessing passwords',
      audit_log: 'audit log',
      audit_chain: 'carries a hash chained to the one before it',
      rate_limit_hits: 'How many times in the current minute you opened each page',
      mail_queue: 'Messages waiting to be sent are stored encrypted',
      remember_logins: 'a remembered login for 5 days',
      two_factor: 'the secret your authenticator app shares with us',
      two_factor_recovery_codes: 'recovery codes, only as hashes',
      two_factor_failures: 'Wrong codes are recorded',
      two_factor_blocks: 'a block on an address',
      archive_requests: 'Each archive you ask for',
      backup_host_events: 'own record of what happened to each archive',
      backup_host_sync: 'how far that record has been copied',
      request_log: 'A request log that puts the events of this page in one place',
      request_log_hourly: 'the number of such events per hour, without any address or account',
    };
    const { rows } = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = 'public' and table_name not like 'kysely_%'`.execute(
      world.app.ctx.database.db,
    );
    for (const { table_name } of rows) {
      expect(coveredBy, `table ${table_name} is not described on /what-we-store`).toHaveProperty(table_name);
      expect(page.body).toContain(coveredBy[table_name]);
    }
  });

  it("states the backup host's address period, and the backup host's default is the portal's", async () => {
    const page = await new WebClient(world.app).get('/what-we-store');
    expect(page.body).toContain(
      "its web server's log of each download keep the <strong>IP address</strong> and the details of the request for 21 days;",
    );
    // The page can only be true on a host left at its default if both sides start from the same number.
    const dir = mkdtempSync(join(tmpdir(), 'archway-dispatcher-config-'));
    try {
      const path = join(dir, 'dispatcher.json');
      const roots = { backupRoot: '/b', archiveRoot: '/a', linkRoot: '/l', stateDir: '/s', secureLinkSecretFile: '/k', downloadLog: '/d' };
      writeFileSync(path, JSON.stringify({ ...roots, downloadBaseUrl: 'https://dl.example.net' }), { mode: 0o600 });
      expect(loadDispatcherConfig(path).ipRetentionDays).toBe(loadConfig({}, '/srv/archway').auth.ipRetentionDays);
      expect(loadDispatcherConfig(path).ipRetentionDays).toBe(30);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('links both pages from the sign-in page and every footer', async () => {
    const signIn = await new WebClient(world.app).get('/sign-in');
    expect(signIn.body).toContain('<a href="/what-we-store">What we store about you</a>');
    expect(signIn.body).toContain('<a href="/terms">Terms of Service</a>');
    const terms = await new WebClient(world.app).get('/terms');
    expect(terms.status).toBe(200);
    expect(terms.body).toContain('<h1>Terms of Service</h1>');
    expect(terms.body).toContain('IP addresses are deleted after 21 days.');
  });
});
