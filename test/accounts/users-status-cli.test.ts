// `archway users suspend|resume|show`: the real program against the real database, seen from the customer's side too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGN_IN_FAILED_MESSAGE } from '../../src/auth/sign-in.service.js';
import { TEST_SECRETS } from '../harness/app.js';
import { runCli } from '../harness/cli.js';
import { createUser, PASSWORD } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';
import type { PortalWorld } from '../harness/world.js';
import { deliverMail, recipients, startWorld } from './fixtures.js';

let world: PortalWorld;
let env: Record<string, string>;
beforeAll(async () => {
  world = await startWorld();
  env = {
    ARCHWAY_DATABASE_URL: world.database.url,
    ARCHWAY_SMTP_URL: world.sink.url,
    ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
    ...TEST_SECRETS,
  };
});
afterAll(async () => world.close());

const users = (...args: string[]) => runCli(['users', ...args], { env });
const audit = (userId: string) =>
  world.app.ctx.database.db
    .selectFrom('audit_log')
    .select(['actor', 'action', 'detail'])
    .where('subject', '=', userId)
    .where('action', 'in', ['user.suspended', 'user.resumed'])
    .orderBy('id')
    .execute();

describe('archway users suspend and resume', () => {
  it('signs a suspended customer out everywhere, keeps them out, tells them why, and lets them back in on resume', async () => {
    const user = await createUser(world.app);
    const browser = new WebClient(world.app);
    expect((await browser.signIn(user.email, PASSWORD)).status).toBe(303);
    expect((await browser.get('/account')).status).toBe(200);
    await deliverMail(world);

    const suspended = await users('suspend', '--email', user.email.toUpperCase(), '--reason', 'Unpaid since March <see ticket 42>');
    expect([suspended.code, suspended.stderr]).toEqual([0, '']);
    expect(suspended.stdout).toBe(`Suspended ${user.email}: 1 signed-in browser signed out; the customer is told by email.\n`);

    // The open browser is out at its next request, and the password no longer signs in.
    expect((await browser.get('/account')).location).toBe('/sign-in?next=%2Faccount');
    const again = await new WebClient(world.app).signIn(user.email, PASSWORD);
    expect(again.status).toBe(401);
    expect(again.body).toContain(SIGN_IN_FAILED_MESSAGE);
    const [told] = await deliverMail(world);
    expect(recipients(told!)).toEqual([user.email]);
    expect(told!.subject).toBe('Your Archway account is suspended');
    expect(told!.text).toContain('The reason your provider gave: Unpaid since March <see ticket 42>');
    expect(told!.html).toContain('Unpaid since March &lt;see ticket 42&gt;');

    const twice = await users('suspend', '--email', user.email, '--reason', 'again');
    expect([twice.code, twice.stderr]).toEqual([65, `archway users: ${user.email} is already suspended.\n`]);

    const resumed = await users('resume', '--email', user.email, '--reason', 'Paid in full');
    expect([resumed.code, resumed.stdout]).toEqual([0, `Resumed ${user.email} (now active); the customer is told by email.\n`]);
    expect((await new WebClient(world.app).signIn(user.email, PASSWORD)).status).toBe(303);
    const [back] = await deliverMail(world);
    expect(back!.subject).toBe('Your Archway account works again');
    expect(await audit(user.id)).toEqual([
      { actor: 'cli', action: 'user.suspended', detail: { reason: 'Unpaid since March <see ticket 42>', was: 'active', endedSessions: 1 } },
      { actor: 'cli', action: 'user.resumed', detail: { reason: 'Paid in full', now: 'active' } },
    ]);
  });

  it('gives an invited account back its invitation state, and refuses what makes no sense', async () => {
    const invited = await createUser(world.app, { status: 'invited', password: null });
    expect((await users('suspend', '--email', invited.email, '--reason', 'Duplicate account')).code).toBe(0);
    const resumed = await users('resume', '--email', invited.email, '--reason', 'Not a duplicate');
    expect(resumed.stdout).toBe(`Resumed ${invited.email} (now invited); the customer is told by email.\n`);

    const active = await createUser(world.app);
    const notSuspended = await users('resume', '--email', active.email, '--reason', 'x');
    expect([notSuspended.code, notSuspended.stderr]).toEqual([65, `archway users: ${active.email} is not suspended (it is active).\n`]);
    const unknown = await users('suspend', '--email', 'nobody@example.net', '--reason', 'x');
    expect([unknown.code, unknown.stderr]).toEqual([65, 'archway users: There is no account with the email address nobody@example.net.\n']);

    for (const args of [
      ['suspend', '--email', active.email],
      ['suspend', '--email', active.email, '--reason', '   '],
      ['suspend', '--email', active.email, '--reason', 'two\nlines'],
      ['suspend', '--email', active.email, '--reason', 'x'.repeat(501)],
      ['show', '--email', active.email, '--reason', 'x'],
    ]) {
      const usage = await users(...args);
      expect([args.join(' '), usage.code]).toEqual([args.join(' '), 64]);
    }
    expect(
      (await world.app.ctx.database.db.selectFrom('users').select('status').where('id', '=', active.id).executeTakeFirst())?.status,
    ).toBe('active');
  });
});

describe('archway users show', () => {
  it("prints what is stored about one account and nothing of another's", async () => {
    const user = await createUser(world.app, { paypalSubscriptionId: 'I-SHOW00000001', backupHost: 'backup-3.example.net' });
    const other = await createUser(world.app);
    expect((await new WebClient(world.app, { remoteAddress: '203.0.113.9' }).signIn(user.email, PASSWORD)).status).toBe(303);
    const shown = await users('show', '--email', user.email);
    expect(shown.code).toBe(0);
    const lines = shown.stdout.split('\n');
    expect(lines.slice(0, 11)).toEqual([
      user.email,
      '  role         customer',
      '  status       active',
      `  domain       ${user.domain}`,
      '  plan         small',
      '  backup host  backup-3.example.net',
      '  subscription I-SHOW00000001',
      '  password     set',
      '  two-factor   off',
      expect.stringMatching(/^ {2}created {6}\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/),
      '  signed in    1 browser',
    ]);
    expect(lines[11]).toBe('  payments     none');
    expect(lines[12]).toMatch(/^ {2}last sign-in \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC from 203\.0\.113\.9 \(success\)$/);
    expect(shown.stdout).not.toContain(other.email);
    const missing = await users('show', '--email', 'nobody@example.net');
    expect([missing.code, missing.stdout]).toEqual([65, '']);
  });
});
