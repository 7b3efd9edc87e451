import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findUserById } from '../../src/users/user.repository.js';
import { PASSWORD_MESSAGES } from '../../src/users/password-policy.js';
import { eventually } from '../harness/eventually.js';
import { WebClient } from '../harness/web-client.js';
import { deliverMail, linkIn, recipients, startWorld } from './fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: PortalWorld;
beforeAll(async () => {
  // Every request of this file comes from the one test address; the per-address limit has its own tests.
  world = await startWorld({ ARCHWAY_RESET_REQUESTS_PER_IP_PER_HOUR: '1000' });
});
afterAll(async () => world.close());

const NEW_PASSWORD = 'Lighthouse-Copper-77';

async function askForReset(email: string): Promise<string> {
  const client = new WebClient(world.app);
  const form = await client.get('/forgot-password');
  expect(form.status).toBe(200);
  const answer = await client.post('/forgot-password', { email });
  expect(answer.status).toBe(303);
  expect(answer.location).toBe('/forgot-password/sent');
  await world.app.ctx.background.settle();
  const [message, ...more] = await deliverMail(world);
  expect(more).toEqual([]);
  expect(message).toBeDefined();
  expect(recipients(message!)).toEqual([email]);
  return linkIn(message!);
}

async function tokenRows(userId: string) {
  return world.app.ctx.database.db.selectFrom('account_tokens').selectAll().where('user_id', '=', userId).orderBy('id').execute();
}

describe('forgot password', () => {
  it('answers a known and an unknown address with the same page, and mails only the known one', async () => {
    const user = await createUser(world.app);
    const answers = [];
    for (const email of [user.email, 'nobody-here@example.net']) {
      const client = new WebClient(world.app);
      await client.get('/forgot-password');
      const answer = await client.post('/forgot-password', { email });
      answers.push({ status: answer.status, location: answer.location, body: answer.body });
    }
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[0]).toEqual({ status: 303, location: '/forgot-password/sent', body: '' });
    await world.app.ctx.background.settle();
    const sent = await deliverMail(world);
    expect(sent.map(recipients)).toEqual([[user.email]]);
    expect(sent[0]?.subject).toBe('Set a new Archway password');
    expect(sent[0]?.text).toContain('The link works once, for 1 hour.');
    const page = await new WebClient(world.app).get('/forgot-password/sent');
    expect(page.body).toContain('If the address belongs to an account, a message with a link is on its way.');
  });

  it('answers a known address without waiting for its lookup: the answer comes while the users table is locked, the link after', async () => {
    // Known and unknown addresses take the same time because the answer does not wait for the lookup;
    // holding the table the lookup needs proves that without timing anything.
    const user = await createUser(world.app);
    const locker = new pg.Client({ connectionString: world.database.url });
    await locker.connect();
    let unlocked = false;
    const unlock = async () => {
      if (unlocked) return;
      unlocked = true;
      await locker.query('ROLLBACK');
      await locker.end();
    };
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
      const client = new WebClient(world.app);
      await client.get('/forgot-password');
      const answer = await client.post('/forgot-password', { email: user.email });
      expect(answer.status).toBe(303);
      expect(answer.location).toBe('/forgot-password/sent');
      // Sentinel: the lookup has started, and waits on the lock the answer did not need.
      await eventually('the reset lookup waiting on the users table', async () => {
        const waiting = await locker.query(
          "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()",
        );
        return waiting.rowCount === 1;
      });
      expect(await deliverMail(world)).toEqual([]);
      await unlock();
      await world.app.ctx.background.settle();
      expect((await deliverMail(world)).map(recipients)).toEqual([[user.email]]);
    } finally {
      await unlock();
    }
  });

  it('refuses an empty or malformed address next to the field, keeping what was typed', async () => {
    const client = new WebClient(world.app);
    await client.get('/forgot-password');
    const empty = await client.post('/forgot-password', { email: '' });
    expect(empty.status).toBe(400);
    expect(empty.body).toContain('<p class="field-error" id="email-error">Enter the email address of your account.</p>');
    const bad = await client.post('/forgot-password', { email: 'not an address' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('Enter an email address like someone@example.net.');
    expect(bad.body).toContain('value="not an address"');
    expect(bad.body).toContain('autocomplete="email"');
  });

  it('sends nothing to a suspended account, and at most 3 links an hour to anyone', async () => {
    const suspended = await createUser(world.app, { status: 'suspended' });
    const busy = await createUser(world.app);
    for (const email of [suspended.email, busy.email, busy.email, busy.email, busy.email, busy.email]) {
      const client = new WebClient(world.app);
      await client.get('/forgot-password');
      expect((await client.post('/forgot-password', { email })).location).toBe('/forgot-password/sent');
      await world.app.ctx.background.settle();
    }
    const sent = await deliverMail(world);
    expect(sent.map(recipients)).toEqual([[busy.email], [busy.email], [busy.email]]);
  });
});

describe('setting a new password from the link', () => {
  it('moves the token out of the address bar, sets the password once, ends every session, and does not sign in', async () => {
    const user = await createUser(world.app);
    // Two browsers signed in: both must be signed out by the reset.
    const laptop = new WebClient(world.app);
    const phone = new WebClient(world.app);
    expect((await laptop.signIn(user.email, PASSWORD)).status).toBe(303);
    expect((await phone.signIn(user.email, PASSWORD)).status).toBe(303);
    expect((await laptop.get('/account')).status).toBe(200);
    const sessionsBefore = await world.app.ctx.database.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute();
    expect(sessionsBefore).toHaveLength(2);

    const link = await askForReset(user.email);
    const browser = new WebClient(world.app);
    const opened = await browser.get(link);
    expect(opened.status).toBe(303);
    expect(opened.location).toBe('/set-password');
    // The cookie that carries the token lives no longer than the one-hour link.
    const maxAge = Number(/Max-Age=(\d+)/.exec(String(opened.headers['set-cookie']))?.[1]);
    expect(maxAge).toBeGreaterThan(3500);
    expect(maxAge).toBeLessThanOrEqual(3600);
    const form = await browser.get('/set-password');
    expect(form.status).toBe(200);
    expect(form.headers['cache-control']).toBe('no-store');
    expect(form.body).toContain('<h1>Set a new password</h1>');
    expect(form.body).toContain(`value="${user.email}" autocomplete="username" readonly`);
    expect(form.body).toContain('name="password" autocomplete="new-password"');
    expect(form.body).not.toContain(link.split('=')[1]!);
    // The link's secret never reaches the log, even though it came in a URL.
    expect(world.logText()).toContain('/set-password?token=[redacted]');
    expect(world.logText()).not.toContain(link.split('.')[1]!);

    const done = await browser.post('/set-password', { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD });
    expect(done.status).toBe(303);
    expect(done.location).toBe('/set-password/done');
    // Not signed in: the page after offers the sign-in form, and /account still asks for it.
    expect((await browser.get('/set-password/done')).body).toContain('<a href="/sign-in">Sign in with your new password</a>');
    expect((await browser.get('/account')).location).toMatch(/^\/sign-in/);

    // Every session of the user is gone server-side; the old cookies lead to the sign-in page.
    expect(await world.app.ctx.database.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    expect((await laptop.get('/account')).location).toMatch(/^\/sign-in/);
    expect((await phone.get('/account')).location).toMatch(/^\/sign-in/);

    const stored = await findUserById(world.app.ctx.database.db, user.id);
    expect((await world.app.ctx.passwords.verify(stored!.passwordHash!, NEW_PASSWORD)).ok).toBe(true);
    expect((await world.app.ctx.passwords.verify(stored!.passwordHash!, PASSWORD)).ok).toBe(false);
    const tokens = await tokenRows(user.id);
    expect(tokens).toHaveLength(1);
    expect(tokens[0]!.used_at).not.toBeNull();

    const audit = await world.app.ctx.database.db.selectFrom('audit_log').selectAll().where('subject', '=', user.id).execute();
    expect(audit.map((a) => [a.action, a.detail])).toEqual([['user.password_reset', { via: 'password_reset', endedSessions: 2 }]]);

    // The user is told by email that the password changed.
    const [notice, ...more] = await deliverMail(world);
    expect(more).toEqual([]);
    expect(recipients(notice!)).toEqual([user.email]);
    expect(notice!.subject).toBe('Your Archway password was changed');

    // The new password signs in; the old does not.
    expect((await new WebClient(world.app).signIn(user.email, PASSWORD)).status).toBe(401);
    expect((await new WebClient(world.app).signIn(user.email, NEW_PASSWORD)).status).toBe(303);
  });

  it('refuses the same link a second time, after it worked', async () => {
    const user = await createUser(world.app);
    const link = await askForReset(user.email);
    const first = new WebClient(world.app);
    await first.get(link);
    await first.get('/set-password');
    expect((await first.post('/set-password', { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD })).location).toBe(
      '/set-password/done',
    );
    await deliverMail(world);
    const hashAfterFirst = (await findUserById(world.app.ctx.database.db, user.id))!.passwordHash;

    const again = new WebClient(world.app);
    await again.get(link);
    const page = await again.get('/set-password');
    expect(page.status).toBe(400);
    expect(page.body).toContain('<h1>This link does not work any more</h1>');
    expect(page.body).not.toContain('name="password"');
    // Posting anyway (with a valid CSRF token from another page, and the link's cookie still held) changes nothing.
    await again.get('/forgot-password');
    const posted = await again.post('/set-password', { password: 'Other-Password-99', password_confirm: 'Other-Password-99' });
    expect(posted.status).toBe(400);
    expect(posted.body).toContain('This link does not work any more');
    expect((await findUserById(world.app.ctx.database.db, user.id))!.passwordHash).toBe(hashAfterFirst);
  });

  it('refuses a link after its hour, and leaves the password as it was', async () => {
    const user = await createUser(world.app);
    const link = await askForReset(user.email);
    const browser = new WebClient(world.app);
    await browser.get(link);
    expect((await browser.get('/set-password')).status).toBe(200);
    world.clock.advanceMinutes(61);
    try {
      const late = await browser.post('/set-password', { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD });
      expect(late.status).toBe(400);
      expect(late.body).toContain('This link does not work any more');
    } finally {
      world.clock.advanceMinutes(-61);
    }
    expect((await findUserById(world.app.ctx.database.db, user.id))!.passwordHash).toBe(user.passwordHash);
    expect((await tokenRows(user.id))[0]!.used_at).toBeNull();
  });

  it('refuses a link whose verifier is wrong, truncated or made up, the same way', async () => {
    const user = await createUser(world.app);
    const link = await askForReset(user.email);
    const token = link.split('=')[1]!;
    const [selector, verifier] = token.split('.') as [string, string];
    const flipped = `${verifier.slice(0, -1)}${verifier.endsWith('A') ? 'B' : 'A'}`;
    for (const candidate of [
      `${selector}.${flipped}`,
      `${selector}.${verifier.slice(1)}`,
      `${'A'.repeat(22)}.${verifier}`,
      'garbage',
      '',
    ]) {
      const browser = new WebClient(world.app);
      const opened = await browser.get(`/set-password?token=${encodeURIComponent(candidate)}`);
      // Refused at once: a token that is not usable is never kept in a cookie.
      expect(opened.status).toBe(400);
      expect(opened.body).toContain('<h1>This link does not work any more</h1>');
      expect(String(opened.headers['set-cookie'] ?? '')).not.toContain(candidate === '' ? 'never' : encodeURIComponent(candidate));
    }
    // The right link still works afterwards: wrong guesses do not burn it.
    const browser = new WebClient(world.app);
    await browser.get(link);
    expect((await browser.get('/set-password')).status).toBe(200);
  });

  it('shows each failed password rule next to the field, keeps the link usable, and never echoes the password', async () => {
    const user = await createUser(world.app, { email: 'marguerite@example.net', domain: 'cinema.example.org' });
    const link = await askForReset(user.email);
    const browser = new WebClient(world.app);
    await browser.get(link);
    await browser.get('/set-password');
    const weak = await browser.post('/set-password', { password: 'marguerite', password_confirm: 'marguerite' });
    expect(weak.status).toBe(422);
    expect(weak.body).toContain('<ul class="field-error" id="password-errors">');
    for (const message of [PASSWORD_MESSAGES.noUppercase, PASSWORD_MESSAGES.noDigit, PASSWORD_MESSAGES.containsEmail]) {
      expect(weak.body).toContain(`<li>${message.replace(/'/g, '&#39;')}</li>`);
    }
    expect(weak.body).not.toContain(PASSWORD_MESSAGES.tooShort);
    expect(weak.body).not.toContain('value="marguerite"');
    const common = await browser.post('/set-password', { password: 'Password123', password_confirm: 'Password123' });
    expect(common.body).toContain(PASSWORD_MESSAGES.common);
    const domain = await browser.post('/set-password', { password: 'Cinema-Paradiso-88', password_confirm: 'Cinema-Paradiso-88' });
    expect(domain.body).toContain(PASSWORD_MESSAGES.containsDomain);
    const mismatch = await browser.post('/set-password', { password: NEW_PASSWORD, password_confirm: `${NEW_PASSWORD}x` });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body).toContain('<p class="field-error" id="confirm-error">The two passwords are not the same.');
    expect((await findUserById(world.app.ctx.database.db, user.id))!.passwordHash).toBe(user.passwordHash);
    // Still usable after the refusals.
    const good = await browser.post('/set-password', { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD });
    expect(good.location).toBe('/set-password/done');
    await deliverMail(world);
  });

  it('accepts a 128-character Unicode password through the form, and it signs in typed in another normal form', async () => {
    const user = await createUser(world.app);
    const start = 'Aa1-Ünïcødé-Пароль-密码-🔐-';
    const long = start + 'é'.repeat(128 - [...start].length);
    expect([...long].length).toBe(128);
    const link = await askForReset(user.email);
    const browser = new WebClient(world.app);
    await browser.get(link);
    await browser.get('/set-password');
    expect((await browser.post('/set-password', { password: long, password_confirm: long })).location).toBe('/set-password/done');
    await deliverMail(world);
    // The same password with decomposed accents (e + U+0301), as another keyboard may send it.
    expect((await new WebClient(world.app).signIn(user.email, long.normalize('NFD'))).status).toBe(303);
  });

  it('lets an invited user who lost the invitation set a first password through "forgot password"', async () => {
    const user = await createUser(world.app, { status: 'invited', password: null });
    const link = await askForReset(user.email);
    const browser = new WebClient(world.app);
    await browser.get(link);
    await browser.get('/set-password');
    expect((await browser.post('/set-password', { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD })).location).toBe(
      '/set-password/done',
    );
    expect((await findUserById(world.app.ctx.database.db, user.id))?.status).toBe('active');
    // A first password is not a change: nobody needs warning.
    expect(await deliverMail(world)).toEqual([]);
    const audit = await world.app.ctx.database.db.selectFrom('audit_log').select('action').where('subject', '=', user.id).execute();
    expect(audit).toEqual([{ action: 'user.password_set' }]);
  });

  it('stops a link from working once its account is suspended', async () => {
    const user = await createUser(world.app);
    const link = await askForReset(user.email);
    await world.app.ctx.database.db.updateTable('users').set({ status: 'suspended' }).where('id', '=', user.id).execute();
    const browser = new WebClient(world.app);
    await browser.get(link);
    expect((await browser.get('/set-password')).status).toBe(400);
    expect((await findUserById(world.app.ctx.database.db, user.id))?.passwordHash).toBe(user.passwordHash);
  });

  it('refuses a form post without the CSRF token and changes nothing', async () => {
    const user = await createUser(world.app);
    const link = await askForReset(user.email);
    const browser = new WebClient(world.app);
    await browser.get(link);
    await browser.get('/set-password');
    const forged = await browser.request({
      method: 'POST',
      url: '/set-password',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ password: NEW_PASSWORD, password_confirm: NEW_PASSWORD }).toString(),
    });
    expect(forged.status).toBe(403);
    expect((await findUserById(world.app.ctx.database.db, user.id))!.passwordHash).toBe(user.passwordHash);
    expect((await tokenRows(user.id))[0]!.used_at).toBeNull();
  });
});
