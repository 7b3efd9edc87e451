import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';
import { buildTestApp } from '../harness/app.js';
import { WebClient } from '../harness/web-client.js';
import {
  alignToMidStep,
  deliverMail,
  enrolThroughPages,
  passwordStep,
  phoneCode,
  recipients,
  recoveryCodesOnPage,
  secretOnPage,
  signedInClient,
  signInWithCode,
  startWorld,
} from './fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createOperator, createUser, PASSWORD, signInOperator } from '../harness/users.js';
import { TEST_SECRETS } from '../harness/app.js';
import { runCli } from '../harness/cli.js';
import { linkIn } from '../accounts/fixtures.js';
import { findUserByEmail } from '../../src/users/user.repository.js';
import { isTwoFactorOn } from '../../src/two-factor/two-factor.service.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world.close());

const db = () => world.app.ctx.database.db;
const clock = () => world.clock;
const operatorFields = { role: 'operator' as const };
const cliEnv = () => ({
  ARCHWAY_DATABASE_URL: world.database.url,
  ARCHWAY_SMTP_URL: world.sink.url,
  ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
  ...TEST_SECRETS,
});

describe('operators and two-factor sign-in', () => {
  it('keeps an operator without two-factor out of everything after the password, enrolment included', async () => {
    const operator = await createUser(world.app, operatorFields);
    const client = new WebClient(world.app);
    const signIn = await passwordStep(client, operator.email, PASSWORD);
    expect(signIn.status).toBe(303);
    for (const path of [
      '/operator',
      '/account',
      '/account/devices',
      '/account/two-factor',
      '/account/two-factor/enrol',
      '/operator/two-factor',
      '/',
    ]) {
      const answer = await client.get(path);
      expect([path, answer.status]).toEqual([path, 403]);
      expect(answer.body).toContain('An operator account turns two-factor sign-in on through a one-time invitation link');
    }
    // Not even with the password and a code of a secret it chose itself.
    const enrol = await client.post('/account/two-factor/enrol', { code: '123456', password: PASSWORD });
    expect(enrol.status).toBe(403);
    expect(await db().selectFrom('two_factor').select('user_id').where('user_id', '=', operator.id).execute()).toEqual([]);
    expect((await client.get('/terms')).status).toBe(200);
    expect((await client.post('/sign-out', {})).status).toBe(303);
  });

  it('sets an invited operator up through the link alone: password and two-factor together, once', async () => {
    const invite = await runCli(['users', 'add', '--email', 'Ops.New@example.net', '--role', 'operator'], { env: cliEnv() });
    expect(invite.code).toBe(0);
    const [mail] = await deliverMail(world);
    expect(mail!.text).toContain('To choose your password and set up two-factor sign-in');
    const link = linkIn(mail!);
    const browser = new WebClient(world.app, { remoteAddress: '198.51.100.44' });
    expect((await browser.get(link)).location).toBe('/set-password');
    const page = await browser.get('/set-password');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<h1>Set up your operator account</h1>');
    const secret = secretOnPage(page.body);

    // A wrong code, a weak password or two different passwords change nothing and keep the link.
    alignToMidStep(clock());
    const wrongCode = await browser.post('/set-password', {
      password: PASSWORD,
      password_confirm: PASSWORD,
      code: phoneCode(clock(), secret, 5),
    });
    expect(wrongCode.status).toBe(422);
    expect(wrongCode.body).toContain('That code is not right.');
    const weak = await browser.post('/set-password', { password: 'short', password_confirm: 'short', code: phoneCode(clock(), secret) });
    expect(weak.status).toBe(422);
    const mismatch = await browser.post('/set-password', {
      password: PASSWORD,
      password_confirm: `${PASSWORD}x`,
      code: phoneCode(clock(), secret),
    });
    expect(mismatch.status).toBe(400);
    const operator = await findUserByEmail(db(), 'ops.new@example.net');
    expect(operator).toMatchObject({ status: 'invited', passwordHash: null });
    expect(await isTwoFactorOn(db(), operator!.id)).toBe(false);

    // The same secret (the page showed it again) and a right code: both are on, and the codes are shown once.
    expect(secretOnPage(mismatch.body)).toEqual(secret);
    const done = await browser.post('/set-password', { password: PASSWORD, password_confirm: PASSWORD, code: phoneCode(clock(), secret) });
    expect(done.status).toBe(200);
    expect(done.body).toContain('<h1>Your operator account is ready</h1>');
    expect(recoveryCodesOnPage(done.body)).toHaveLength(10);
    expect(done.body).toContain('<a href="/sign-in">I have saved them: sign in</a>');
    expect(await isTwoFactorOn(db(), operator!.id)).toBe(true);
    const audit = await db().selectFrom('audit_log').select(['action', 'ip']).where('subject', '=', operator!.id).orderBy('id').execute();
    expect(audit.at(-1)).toEqual({ action: 'user.operator_enrolled', ip: '198.51.100.44' });

    // The link is spent; the link page is no way in again.
    const replay = new WebClient(world.app);
    await replay.get(link);
    expect((await replay.get('/set-password')).status).toBe(400);
    // Signing in takes the password and the code; then the operator area opens.
    clock().advance(30_000);
    const desk = new WebClient(world.app);
    expect((await signInWithCode(desk, operator!.email, PASSWORD, phoneCode(clock(), secret))).status).toBe(303);
    expect((await desk.get('/operator')).status).toBe(200);
    expect(world.logText()).not.toContain(link.split('token=')[1]!);
  });

  it('sends a new link only to an account that has not set itself up', async () => {
    const stuck = await createUser(world.app, operatorFields);
    const resent = await runCli(['users', 'invite', '--email', stuck.email], { env: cliEnv() });
    expect([resent.code, resent.stdout]).toEqual([0, `Sent a new invitation to ${stuck.email}; earlier links no longer work.\n`]);
    const mail = (await deliverMail(world)).find((m) => recipients(m).includes(stuck.email));
    expect(mail?.subject).toBe('Your Archway account is ready: set your password');
    const browser = new WebClient(world.app);
    await browser.get(linkIn(mail!));
    expect((await browser.get('/set-password')).body).toContain('<h1>Set up your operator account</h1>');

    const { operator: done } = await createOperator(world.app);
    const customer = await createUser(world.app);
    for (const [email, why] of [
      [done.email, 'has set up its password and two-factor sign-in already'],
      [customer.email, 'has set its password already'],
      ['nobody@example.net', 'There is no account with the email address nobody@example.net.'],
    ] as const) {
      const refused = await runCli(['users', 'invite', '--email', email], { env: cliEnv() });
      expect([email, refused.code]).toEqual([email, 65]);
      expect(refused.stderr).toContain(why);
    }
  });

  it('does not force customers unless ARCHWAY_TWO_FACTOR_FOR_CUSTOMERS is on', async () => {
    const customer = await createUser(world.app);
    const client = await signedInClient(world.app, customer.email, PASSWORD);
    expect((await client.get('/account')).status).toBe(200);

    // Its own connection to the same database: closing an app closes its handle.
    const handle = await connectDatabase({ databaseUrl: world.database.url, dataDir: '/nonexistent' });
    const strict = await buildTestApp(handle, world.database.url, {
      ARCHWAY_SMTP_URL: world.sink.url,
      ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
      ARCHWAY_TWO_FACTOR_FOR_CUSTOMERS: 'true',
    });
    try {
      await strict.app.ready();
      const forced = new WebClient(strict.app);
      await passwordStep(forced, customer.email, PASSWORD);
      const answer = await forced.get('/account');
      expect(answer.status).toBe(303);
      expect(answer.location).toBe('/account/two-factor/enrol');
    } finally {
      await strict.app.close();
    }
  });
});

describe("the operator's two-factor reset", () => {
  it("turns a customer's two-factor off, signs them out everywhere, records who did it, and emails them", async () => {
    const customer = await createUser(world.app);
    const customerBrowser = await signedInClient(world.app, customer.email, PASSWORD);
    await enrolThroughPages(customerBrowser, clock(), PASSWORD);
    const { operator, secret } = await createOperator(world.app);
    const desk = new WebClient(world.app, { remoteAddress: '198.51.100.90' });
    expect((await signInOperator(world.app, desk, operator.email, secret)).status).toBe(303);
    await deliverMail(world);

    const form = await desk.get('/operator/two-factor');
    expect(form.status).toBe(200);
    expect(form.body).toContain('<label for="email">Email address of the account</label>');
    const unconfirmed = await desk.post('/operator/two-factor', { email: customer.email });
    expect(unconfirmed.status).toBe(400);
    expect(unconfirmed.body).toContain('Tick the box to confirm you checked who is asking.');
    expect(unconfirmed.body).toContain(`value="${customer.email}"`);
    const unknown = await desk.post('/operator/two-factor', { email: 'nobody@example.net', confirm: 'yes' });
    expect(unknown.status).toBe(404);
    const self = await desk.post('/operator/two-factor', { email: operator.email, confirm: 'yes' });
    expect(self.status).toBe(400);
    expect(await db().selectFrom('audit_log').select('id').where('action', '=', 'two-factor.reset').execute()).toEqual([]);

    const done = await desk.post('/operator/two-factor', { email: customer.email, confirm: 'yes' });
    expect(done.status).toBe(303);
    expect(done.location).toBe('/operator/two-factor?done');
    expect(await db().selectFrom('two_factor').select('user_id').where('user_id', '=', customer.id).execute()).toEqual([]);
    expect(await db().selectFrom('two_factor_recovery_codes').select('id').where('user_id', '=', customer.id).execute()).toEqual([]);
    expect((await customerBrowser.get('/account')).status).toBe(303);
    const audit = await db()
      .selectFrom('audit_log')
      .select(['actor', 'action', 'subject', 'ip'])
      .where('action', '=', 'two-factor.reset')
      .execute();
    expect(audit).toEqual([{ actor: operator.id, action: 'two-factor.reset', subject: customer.id, ip: '198.51.100.90' }]);
    const mail = await deliverMail(world);
    expect(mail.map((m) => [recipients(m), m.subject])).toEqual([
      [[customer.email], 'Your provider reset two-factor sign-in on your Archway account'],
    ]);

    // The customer signs in with the password alone now.
    const back = new WebClient(world.app);
    expect((await passwordStep(back, customer.email, PASSWORD)).location).toBe('/account');
    // And a customer cannot reach the reset page.
    const page = await back.get('/operator/two-factor');
    expect(page.status).toBe(404);
  });

  it("keeps an operator's own two-factor on: no form to turn it off, and one posted anyway is refused", async () => {
    const { operator, secret } = await createOperator(world.app);
    const desk = new WebClient(world.app);
    expect((await signInOperator(world.app, desk, operator.email, secret)).status).toBe(303);
    await deliverMail(world);
    const page = await desk.get('/account/two-factor');
    expect(page.status).toBe(200);
    expect(page.body).toContain('Operators keep two-factor sign-in on');
    expect(page.body).not.toContain('action="/account/two-factor/disable"');

    // The right password and a fresh code: still refused, and nothing changes.
    clock().advance(30_000);
    const refused = await desk.post('/account/two-factor/disable', { password: PASSWORD, code: phoneCode(clock(), secret) });
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('Operators keep two-factor sign-in on. For a new phone, ask another operator to reset it');
    expect(await isTwoFactorOn(db(), operator.id)).toBe(true);
    expect(
      await db()
        .selectFrom('audit_log')
        .select('id')
        .where('action', '=', 'two-factor.disabled')
        .where('subject', '=', operator.id)
        .execute(),
    ).toEqual([]);
    expect(await deliverMail(world)).toEqual([]);
    expect((await desk.get('/operator')).status).toBe(200);
  });

  it("resets another operator's two-factor in words for an operator, and the set-up link brings them back", async () => {
    const { operator, secret } = await createOperator(world.app);
    const { operator: lost } = await createOperator(world.app);
    const desk = new WebClient(world.app);
    expect((await signInOperator(world.app, desk, operator.email, secret)).status).toBe(303);
    await deliverMail(world);
    await desk.get('/operator/two-factor');
    const done = await desk.post('/operator/two-factor', { email: lost.email, confirm: 'yes' });
    expect(done.location).toBe('/operator/two-factor?done=operator');
    const notice = await desk.get(done.location!);
    expect(notice.body).toContain('The operator was emailed and signed out everywhere, and can do nothing until set up again');
    expect(notice.body).toContain('archway users invite --email ADDRESS');
    const [told, ...more] = await deliverMail(world);
    expect(more).toEqual([]);
    expect(recipients(told!)).toEqual([lost.email]);
    expect(told!.text).toContain('An operator account can do nothing without two-factor sign-in');
    expect(told!.text).not.toContain('from your account page');

    // What the page says to do works: the invitation opens the operator set-up page.
    const invited = await runCli(['users', 'invite', '--email', lost.email], { env: cliEnv() });
    expect(invited.code).toBe(0);
    const link = (await deliverMail(world)).find((m) => recipients(m).includes(lost.email));
    const browser = new WebClient(world.app);
    await browser.get(linkIn(link!));
    expect((await browser.get('/set-password')).body).toContain('<h1>Set up your operator account</h1>');
  });
});
