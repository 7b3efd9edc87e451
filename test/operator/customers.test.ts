// The operator's customer pages: hidden from customers, search, the customer page, and every action audited and reversible.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRememberLogin } from '../../src/auth/remember-me.service.js';
import { addressBlockKey } from '../../src/users/regulation.js';
import type { User } from '../../src/users/user.repository.js';
import { deliverMail, recipients, startWorld } from '../accounts/fixtures.js';
import { createOperator, createUser, PASSWORD, signInOperator, turnOnTwoFactor } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';
import type { PortalWorld } from '../harness/world.js';

let world: PortalWorld;
let desk: WebClient;
let operatorId: string;
const DESK_IP = '203.0.113.9';
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

beforeAll(async () => {
  world = await startWorld();
  const { operator, secret } = await createOperator(world.app);
  operatorId = operator.id;
  desk = new WebClient(world.app, { remoteAddress: DESK_IP });
  expect((await signInOperator(world.app, desk, operator.email, secret)).status).toBe(303);
});
afterAll(async () => world.close());

const db = () => world.app.ctx.database.db;
const page = (user: User) => `/operator/customers/${user.id}`;

function customer(fields: { domain?: string; paypalSubscriptionId?: string } = {}): Promise<User> {
  return createUser(world.app, fields);
}

/** One browser signed in with the password, and one holding only a remember-me cookie (its session long gone). */
async function twoBrowsers(user: User) {
  const open = new WebClient(world.app);
  expect((await open.signIn(user.email, PASSWORD)).status).toBe(303);
  const ip = '198.51.100.70';
  const issued = await createRememberLogin(db(), { userId: user.id, now: world.clock.now(), sessionId: null, ip, userAgent: 't' });
  const remembered = new WebClient(world.app, { remoteAddress: ip });
  remembered.cookies.set('archway-remember', issued.value);
  return { open, remembered };
}

/** Opens the action's confirmation page and posts its form, as the operator's browser does. */
async function act(user: User, action: string, form: Record<string, string>) {
  const confirm = await desk.get(`${page(user)}/${action}`);
  expect(confirm.status).toBe(200);
  return desk.post(`${page(user)}/${action}`, form);
}

const auditOf = (subject: string, action: string) =>
  db().selectFrom('audit_log').select(['actor', 'ip', 'detail']).where('subject', '=', subject).where('action', '=', action).execute();

describe('the operator area seen by a customer', () => {
  it('answers every operator page, action and guessed address with the same 404 as an unknown page, GET and POST', async () => {
    const user = await customer();
    const other = await customer();
    const browser = new WebClient(world.app);
    expect((await browser.signIn(user.email, PASSWORD)).status).toBe(303);
    const unknown = await browser.get('/no-such-page-anywhere');
    expect(unknown.status).toBe(404);
    const notFoundTitle = /<title>[^<]*<\/title>/.exec(unknown.body)![0];
    const gets = [
      '/operator',
      '/operator/requests',
      '/operator/requests?q=example',
      '/operator/two-factor',
      '/operator/outbox',
      '/operator/customers',
      '/operator/customers?q=a',
      '/operator/log',
      `/operator/log?customer=${encodeURIComponent(other.email)}`,
      '/operator/log.csv',
      '/operator/log.csv?ip=198.51.100.0%2F24',
      '/operator/activity?by=hour',
      page(other),
      `${page(other)}/suspend`,
      `${page(user)}/end-sessions`,
      `/operator/customers/${UNKNOWN_ID}`,
      '/operator/nonexistent',
      '/operator/customers/not-a-uuid/suspend',
    ];
    const posts = [
      '/operator/blocks/1/unblock',
      '/operator/two-factor',
      ...['invite', 'change-email', 'suspend', 'resume', 'reset-two-factor', 'end-sessions', 'lift-block'].map(
        (a) => `${page(other)}/${a}`,
      ),
      '/operator/nonexistent',
    ];
    for (const url of gets) {
      const answer = await browser.get(url);
      expect([url, answer.status]).toEqual([url, 404]);
      expect(answer.body).toContain(notFoundTitle);
      expect(answer.body).not.toContain('operator');
    }
    await browser.get('/account');
    for (const url of posts) {
      const answer = await browser.post(url, { reason: 'mine now', newEmail: 'thief@example.net' });
      expect([url, answer.status]).toEqual([url, 404]);
      expect(answer.body).toContain(notFoundTitle);
    }
    // Without a form token, too: a CSRF refusal would tell the area exists.
    const bare = await browser.request({ method: 'POST', url: `${page(other)}/suspend`, payload: '', headers: {} });
    expect(bare.status).toBe(404);
    expect((await db().selectFrom('users').select(['email', 'status']).where('id', '=', other.id).executeTakeFirstOrThrow()).status).toBe(
      'active',
    );
    expect(await auditOf(other.id, 'user.suspended')).toEqual([]);

    // Someone not signed in is sent to sign in, as before.
    expect((await new WebClient(world.app).get('/operator/customers')).location).toBe('/sign-in?next=%2Foperator%2Fcustomers');
  });
});

describe('customer search', () => {
  it('finds customers by part of the email, the domain or the subscription id, and pages through long lists', async () => {
    const byDomain = await customer({ domain: 'searchable-shop.example' });
    const bySubscription = await customer({ paypalSubscriptionId: 'I-SEARCH9X7Q' });
    const byDomainPage = await desk.get('/operator/customers?q=SEARCHABLE-shop');
    expect(byDomainPage.status).toBe(200);
    expect(byDomainPage.body).toContain(`href="${page(byDomain)}"`);
    expect(byDomainPage.body).not.toContain(`href="${page(bySubscription)}"`);
    const bySub = await desk.get('/operator/customers?q=i-search9x7');
    expect(bySub.body).toContain(`href="${page(bySubscription)}"`);
    expect(bySub.body).not.toContain(`href="${page(byDomain)}"`);
    const byEmail = await desk.get(`/operator/customers?q=${encodeURIComponent(byDomain.email.split('@')[0]!)}`);
    expect(byEmail.body).toContain(`href="${page(byDomain)}"`);
    // `%` is a character, not a wildcard.
    expect((await desk.get('/operator/customers?q=%25')).body).toContain('No customer matches.');

    // Keyset pages: every customer once, none twice.
    const seen: string[] = [];
    let url: string | null = '/operator/customers';
    while (url !== null) {
      const answer = await desk.get(url);
      seen.push(...[...answer.body.matchAll(/href="\/operator\/customers\/([0-9a-f-]{36})"/g)].map((m) => m[1]!));
      url = /<a href="([^"]+)">Next customers<\/a>/.exec(answer.body)?.[1]?.replaceAll('&amp;', '&') ?? null;
    }
    const customers = await db().selectFrom('users').select('id').where('role', '=', 'customer').execute();
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.sort()).toEqual(customers.map((c) => c.id).sort());
  });

  it('answers bad input with a 400 that says what is wrong', async () => {
    const long = await desk.get(`/operator/customers?q=${'a'.repeat(255)}`);
    expect(long.status).toBe(400);
    expect(long.body).toContain('longer than 254 characters');
    expect((await desk.get('/operator/customers?q=a&q=b')).status).toBe(400);
    expect((await desk.get('/operator/customers?q=a%00b')).status).toBe(400);
    expect((await desk.get('/operator/customers?after=nope')).status).toBe(400);
    expect((await desk.get('/operator/customers/not-a-uuid')).status).toBe(404);
    expect((await desk.get(`/operator/customers/${UNKNOWN_ID}`)).status).toBe(404);
    expect((await desk.get(`/operator/customers/${operatorId}`)).status).toBe(404);
    expect((await desk.get(`/operator/customers/${UNKNOWN_ID}/suspend`)).status).toBe(404);
    const user = await customer();
    expect((await desk.get(`${page(user)}/delete`)).status).toBe(404);
  });
});

describe('the customer page', () => {
  it('shows the account, payments, sessions, remember-me logins, two-factor, archives, attempts and blocks, and no secret', async () => {
    const user = await customer({ domain: 'shown-shop.example', paypalSubscriptionId: 'I-SHOWN123' });
    await db().updateTable('users').set({ plan: 'Gold', backup_host: 'backup-7.example.net' }).where('id', '=', user.id).execute();
    await db()
      .insertInto('payments')
      .values({
        user_id: user.id,
        paid_at: new Date('2026-03-01T10:00:00Z'),
        amount: '12.50',
        currency: 'EUR',
        status: 'Completed',
        reference: 'TX-SHOWN-1',
      })
      .execute();
    await turnOnTwoFactor(world.app, user.id);
    const remembered = await createRememberLogin(db(), {
      userId: user.id,
      now: world.clock.now(),
      sessionId: null,
      ip: '198.51.100.61',
      userAgent: 'Phone browser',
    });
    await db()
      .insertInto('archive_requests')
      .values({ user_id: user.id, customer: 'shown-shop.example', snapshot: 'daily.3', state: 'ready', requested_ip: '198.51.100.62' })
      .execute();
    await db()
      .insertInto('sign_in_attempts')
      .values({
        at: world.clock.now(),
        email_tried: user.email,
        user_id: user.id,
        ip: '198.51.100.63',
        outcome: 'failure',
        reason: 'wrong_password',
      })
      .execute();
    const until = new Date(world.clock.now().getTime() + 3_600_000);
    await db()
      .insertInto('blocks')
      .values({ scope: 'ip', key: addressBlockKey('198.51.100.63'), until, level: 1, created_at: world.clock.now() })
      .execute();

    const shown = await desk.get(page(user));
    expect(shown.status).toBe(200);
    expect(shown.headers['cache-control']).toBe('no-store');
    for (const text of [
      user.email,
      'shown-shop.example',
      'Gold',
      'backup-7.example.net',
      'I-SHOWN123',
      'TX-SHOWN-1',
      '12.50 EUR',
      'daily.3',
      '198.51.100.62',
      '198.51.100.61',
      'Phone browser',
      '198.51.100.63',
      'failure',
      '198.51.100.63/32',
    ]) {
      expect([text, shown.body.includes(text)]).toEqual([text, true]);
    }
    expect(shown.body).toContain('On since');
    expect(shown.body).toContain('0 recovery codes left');
    const secrets = [remembered.value, ...remembered.value.split('.')];
    const [twoFactor] = await db().selectFrom('two_factor').select('secret_encrypted').where('user_id', '=', user.id).execute();
    secrets.push(twoFactor!.secret_encrypted);
    for (const secret of secrets) expect(shown.body).not.toContain(secret);
    for (const cookie of desk.cookies.values()) expect(shown.body).not.toContain(cookie);
  });
});

describe('actions', () => {
  it('refuses a POST without the form token and one without a reason, and changes nothing', async () => {
    const user = await customer();
    const noToken = await desk.request({
      method: 'POST',
      url: `${page(user)}/suspend`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'reason=forged',
    });
    expect(noToken.status).toBe(403);
    const noReason = await act(user, 'suspend', { reason: '  ' });
    expect(noReason.status).toBe(400);
    expect(noReason.body).toContain('Say why');
    const tooLong = await act(user, 'suspend', { reason: 'x'.repeat(501) });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body).toContain('longer than 500 characters');
    expect((await db().selectFrom('users').select('status').where('id', '=', user.id).executeTakeFirstOrThrow()).status).toBe('active');
    expect(await auditOf(user.id, 'user.suspended')).toEqual([]);
  });

  it('suspends: the open session and the remember-me cookie stop working and the password does not sign in; resume restores it', async () => {
    const user = await customer();
    const { open, remembered } = await twoBrowsers(user);
    await deliverMail(world);

    const done = await act(user, 'suspend', { reason: 'Unpaid since March' });
    expect([done.status, done.location]).toEqual([303, `${page(user)}?done=suspend`]);
    const after = await desk.get(done.location!);
    expect(after.body).toContain('The account was suspended');
    expect(after.body).toContain('suspended (reason: Unpaid since March)');
    expect(await auditOf(user.id, 'user.suspended')).toEqual([
      { actor: operatorId, ip: DESK_IP, detail: { reason: 'Unpaid since March', was: 'active', endedSessions: 1 } },
    ]);
    expect((await open.get('/account')).location).toBe('/sign-in?next=%2Faccount');
    expect((await remembered.get('/account')).location).toBe('/sign-in?next=%2Faccount');
    expect((await new WebClient(world.app).signIn(user.email, PASSWORD)).status).toBe(401);
    const [told] = await deliverMail(world);
    expect([recipients(told!), told!.subject]).toEqual([[user.email], 'Your Archway account is suspended']);

    const resumed = await act(user, 'resume', { reason: 'Paid' });
    expect(resumed.location).toBe(`${page(user)}?done=resume`);
    expect((await new WebClient(world.app).signIn(user.email, PASSWORD)).status).toBe(303);
    expect(await auditOf(user.id, 'user.resumed')).toEqual([{ actor: operatorId, ip: DESK_IP, detail: { reason: 'Paid', now: 'active' } }]);
    const [back] = await deliverMail(world);
    expect(back!.subject).toBe('Your Archway account works again');
  });

  it('changes the email: both addresses are told, the customer signs in with the new one; a taken or bad address is refused', async () => {
    const user = await customer();
    const taken = await customer();
    await deliverMail(world);
    const bad = await act(user, 'change-email', { reason: 'Asked by phone', newEmail: 'not an address' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('is not an email address');
    const clash = await act(user, 'change-email', { reason: 'Asked by phone', newEmail: taken.email.toUpperCase() });
    expect(clash.status).toBe(409);
    expect(clash.body).toContain('Another account already uses that address.');

    const fresh = `moved-${user.id.slice(0, 8)}@example.org`;
    const done = await act(user, 'change-email', { reason: 'Ticket 77', newEmail: fresh });
    expect(done.location).toBe(`${page(user)}?done=change-email`);
    const mails = await deliverMail(world);
    expect(mails.map((m) => recipients(m)[0]).sort()).toEqual([user.email, fresh].sort());
    expect((await new WebClient(world.app).signIn(fresh, PASSWORD)).status).toBe(303);
    expect((await new WebClient(world.app).signIn(user.email, PASSWORD)).status).toBe(401);
    expect(await auditOf(user.id, 'user.email_changed')).toEqual([
      { actor: operatorId, ip: DESK_IP, detail: { from: user.email, to: fresh, reason: 'Ticket 77' } },
    ]);
    expect((await db().selectFrom('users').select('email').where('id', '=', taken.id).executeTakeFirstOrThrow()).email).toBe(taken.email);
  });

  it('ends every session and remember-me login, audited', async () => {
    const user = await customer();
    const { open, remembered } = await twoBrowsers(user);
    const done = await act(user, 'end-sessions', { reason: 'Lost laptop' });
    expect(done.location).toBe(`${page(user)}?done=end-sessions`);
    expect((await open.get('/account')).location).toBe('/sign-in?next=%2Faccount');
    expect((await remembered.get('/account')).location).toBe('/sign-in?next=%2Faccount');
    expect(await auditOf(user.id, 'user.sessions_ended')).toEqual([
      { actor: operatorId, ip: DESK_IP, detail: { reason: 'Lost laptop', ended: 2 } },
    ]);
    // The password still works: nothing was taken away.
    expect((await new WebClient(world.app).signIn(user.email, PASSWORD)).status).toBe(303);
  });

  it('invites an invited customer again and resets two-factor, each audited with the reason', async () => {
    const invited = await createUser(world.app, { status: 'invited', password: null });
    await deliverMail(world);
    const done = await act(invited, 'invite', { reason: 'Lost the first email' });
    expect(done.location).toBe(`${page(invited)}?done=invite`);
    expect((await deliverMail(world)).map((m) => recipients(m)[0])).toEqual([invited.email]);
    expect(await auditOf(invited.id, 'user.reinvited')).toEqual([
      { actor: operatorId, ip: DESK_IP, detail: { role: 'customer', reason: 'Lost the first email' } },
    ]);
    const active = await customer();
    const refused = await act(active, 'invite', { reason: 'x' });
    expect(refused.status).toBe(409);

    const user = await customer();
    await turnOnTwoFactor(world.app, user.id);
    const reset = await act(user, 'reset-two-factor', { reason: 'Lost phone, identity checked' });
    expect(reset.location).toBe(`${page(user)}?done=reset-two-factor`);
    expect(await db().selectFrom('two_factor').select('user_id').where('user_id', '=', user.id).execute()).toEqual([]);
    expect(await auditOf(user.id, 'two-factor.reset')).toEqual([
      { actor: operatorId, ip: DESK_IP, detail: { email: user.email, reason: 'Lost phone, identity checked' } },
    ]);
    expect((await act(user, 'reset-two-factor', { reason: 'again' })).status).toBe(409);
  });

  it('lifts an account block, an IP block and a two-factor block, and only those of this customer', async () => {
    const user = await customer();
    const other = await customer();
    const now = world.clock.now();
    const until = new Date(now.getTime() + 3_600_000);
    await db()
      .insertInto('sign_in_attempts')
      .values({ at: now, email_tried: user.email, user_id: user.id, ip: '198.51.100.80', outcome: 'failure', reason: 'wrong_password' })
      .execute();
    const insert = (table: 'blocks' | 'two_factor_blocks', scope: 'ip' | 'user', key: string) =>
      db()
        .insertInto(table)
        .values({ scope, key, until, created_at: now, ...(table === 'blocks' ? { level: 1 } : {}) })
        .returning('id')
        .executeTakeFirstOrThrow()
        .then((r) => String(r.id));
    const accountBlock = await insert('blocks', 'user', user.id);
    const ipBlock = await insert('blocks', 'ip', addressBlockKey('198.51.100.80'));
    const twoFactorBlock = await insert('two_factor_blocks', 'user', user.id);
    const othersBlock = await insert('blocks', 'user', other.id);

    // Blocked: the password does not sign in.
    expect((await new WebClient(world.app, { remoteAddress: '198.51.100.81' }).signIn(user.email, PASSWORD)).status).not.toBe(303);

    // Another customer's block id posted on this customer's form: refused, nothing lifted.
    const wrong = await act(user, 'lift-block', { reason: 'x', block: `sign-in:${othersBlock}` });
    expect(wrong.status).toBe(404);
    const stillThere = await db().selectFrom('blocks').select('lifted_at').where('id', '=', othersBlock).executeTakeFirstOrThrow();
    expect(stillThere.lifted_at).toBeNull();

    for (const [kind, id] of [
      ['sign-in', accountBlock],
      ['sign-in', ipBlock],
      ['two-factor', twoFactorBlock],
    ] as const) {
      const done = await act(user, 'lift-block', { reason: `Customer called about ${kind} ${id}`, block: `${kind}:${id}` });
      expect([kind, done.location]).toEqual([kind, `${page(user)}?done=lift-block`]);
    }
    const lifted = await db().selectFrom('blocks').select(['id', 'lifted_by']).where('id', 'in', [accountBlock, ipBlock]).execute();
    expect(lifted.map((b) => b.lifted_by)).toEqual([operatorId, operatorId]);
    const tf = await db().selectFrom('two_factor_blocks').select('lifted_by').where('id', '=', twoFactorBlock).executeTakeFirstOrThrow();
    expect(tf.lifted_by).toBe(operatorId);
    const audits = await db()
      .selectFrom('audit_log')
      .select(['action', 'actor', 'ip', 'detail'])
      .where('action', 'in', ['sign-in.unblocked', 'two-factor.unblocked'])
      .where('actor', '=', operatorId)
      .orderBy('id')
      .execute();
    expect(audits.filter((a) => [accountBlock, ipBlock, twoFactorBlock].includes(String(a.detail.blockId)))).toEqual([
      {
        action: 'sign-in.unblocked',
        actor: operatorId,
        ip: DESK_IP,
        detail: { blockId: accountBlock, scope: 'user', level: 1, reason: `Customer called about sign-in ${accountBlock}` },
      },
      {
        action: 'sign-in.unblocked',
        actor: operatorId,
        ip: DESK_IP,
        detail: { blockId: ipBlock, scope: 'ip', level: 1, reason: `Customer called about sign-in ${ipBlock}` },
      },
      {
        action: 'two-factor.unblocked',
        actor: operatorId,
        ip: DESK_IP,
        detail: { blockId: twoFactorBlock, scope: 'user', reason: `Customer called about two-factor ${twoFactorBlock}` },
      },
    ]);
    expect((await new WebClient(world.app, { remoteAddress: '198.51.100.82' }).signIn(user.email, PASSWORD)).status).toBe(303);
    // Lifting it again: already lifted, says so.
    expect((await act(user, 'lift-block', { reason: 'again', block: `sign-in:${accountBlock}` })).status).toBe(404);
  });
});
