import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRememberLogin,
  deleteExpiredRememberLogins,
  forgetRememberLoginIps,
  REMEMBER_DAYS,
  ROTATION_GRACE_SECONDS,
} from '../../src/auth/remember-me.service.js';
import { WebClient } from '../harness/web-client.js';
import { deliverMail, linkIn, recipients, startWorld } from '../accounts/fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, currentCode, PASSWORD, turnOnTwoFactor } from '../harness/users.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world.close());

const COOKIE = 'archway-remember';
const db = () => world.app.ctx.database.db;
const clock = () => world.clock;

/** A browser whose session has ended (closed, idle) but which still holds its remember-me cookie. */
async function browserWithRememberCookie(userId: string, remoteAddress = '198.51.100.20') {
  const issued = await createRememberLogin(db(), { userId, now: clock().now(), sessionId: null, ip: remoteAddress, userAgent: 'test' });
  const client = new WebClient(world.app, { remoteAddress });
  client.cookies.set(COOKIE, issued.value);
  return { client, cookie: issued.value };
}

async function loginsOf(userId: string) {
  return db().selectFrom('remember_logins').selectAll().where('user_id', '=', userId).orderBy('id').execute();
}
async function sessionsOf(userId: string) {
  return db().selectFrom('sessions').select(['id']).where('user_id', '=', userId).execute();
}

describe('remember me', () => {
  it('signs a browser in from its cookie alone, with a fresh session and a new series and token', async () => {
    const user = await createUser(world.app);
    const { client, cookie } = await browserWithRememberCookie(user.id);
    const page = await client.get('/account');
    expect(page.status).toBe(200);
    expect(page.body).toContain(user.email);
    const renewed = client.cookies.get(COOKIE)!;
    expect(renewed).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
    expect(renewed.split('.')[0]).not.toBe(cookie.split('.')[0]);
    expect(renewed.split('.')[1]).not.toBe(cookie.split('.')[1]);
    expect(client.cookies.get('archway-session')).toBeDefined();
    expect(await sessionsOf(user.id)).toHaveLength(1);
    const setCookie = String(page.headers['set-cookie']);
    expect(setCookie).toMatch(/archway-remember=[^;]+; Path=\/; Expires=[^;]+; HttpOnly; SameSite=Lax/);

    const logins = await loginsOf(user.id);
    expect(logins).toHaveLength(2);
    expect(logins[0]).toMatchObject({ series: cookie.split('.')[0], replaced_by: renewed.split('.')[0] });
    expect(logins[0]!.replaced_at).not.toBeNull();
    expect(logins[1]).toMatchObject({ series: renewed.split('.')[0], replaced_at: null, ip: '198.51.100.20' });
    // The session that the cookie started is recorded, so ending one ends the other.
    expect(logins[1]!.session_id).toBe((await sessionsOf(user.id))[0]!.id);
    // Rotation does not stretch the 5 days.
    expect(logins[1]!.expires_at).toEqual(logins[0]!.expires_at);
  });

  it('stores the series as it is and the token only as its SHA-256', async () => {
    const user = await createUser(world.app);
    const { cookie } = await browserWithRememberCookie(user.id);
    const [series, token] = cookie.split('.') as [string, string];
    const [row] = await loginsOf(user.id);
    expect(row!.series).toBe(series);
    expect(row!.token_hash).toEqual(createHash('sha256').update(token).digest());
    expect(JSON.stringify(row)).not.toContain(token);
  });

  it('lets the previous cookie yield the same new login within the grace window, and not after it', async () => {
    const user = await createUser(world.app);
    const { client, cookie } = await browserWithRememberCookie(user.id);
    expect((await client.get('/account')).status).toBe(200);
    const renewed = client.cookies.get(COOKIE)!;

    // A second tab that still sent the old cookie a moment later gets the very same new cookie.
    const tab = new WebClient(world.app);
    tab.cookies.set(COOKIE, cookie);
    expect((await tab.get('/account')).status).toBe(200);
    expect(tab.cookies.get(COOKIE)).toBe(renewed);

    clock().advance((ROTATION_GRACE_SECONDS + 1) * 1000);
    const late = new WebClient(world.app);
    late.cookies.set(COOKIE, cookie);
    const answer = await late.get('/account');
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/sign-in?next=%2Faccount');
    expect(late.cookies.has(COOKIE)).toBe(false);
    await deliverMail(world);
  });

  it('ends 5 days after the sign-in, however often it was used meanwhile', async () => {
    const user = await createUser(world.app);
    const { client } = await browserWithRememberCookie(user.id);
    for (let day = 1; day < REMEMBER_DAYS; day += 1) {
      clock().advance(86_400_000);
      // The session has long gone idle; the cookie signs the browser in again each day.
      client.cookies.delete('archway-session');
      expect((await client.get('/account')).status).toBe(200);
    }
    clock().advance(86_400_000 - 60_000);
    client.cookies.delete('archway-session');
    expect((await client.get('/account')).status).toBe(200);
    clock().advance(60_000);
    client.cookies.delete('archway-session');
    const answer = await client.get('/account');
    expect(answer.status).toBe(303);
    expect(client.cookies.has(COOKIE)).toBe(false);
    expect((await loginsOf(user.id)).filter((l) => l.replaced_at === null)).toEqual([]);
    expect(await deliverMail(world)).toEqual([]);
  });

  it('treats a known series with a wrong token as theft: every login and session of the user ends, they are emailed, it is logged', async () => {
    const user = await createUser(world.app);
    await deliverMail(world);
    const victim = new WebClient(world.app);
    await victim.signIn(user.email, PASSWORD);
    expect((await victim.get('/account')).status).toBe(200);
    const { cookie } = await browserWithRememberCookie(user.id);
    await browserWithRememberCookie(user.id, '198.51.100.30');

    const attacker = new WebClient(world.app, { remoteAddress: '192.0.2.66' });
    attacker.cookies.set(COOKIE, `${cookie.split('.')[0]}.${'A'.repeat(43)}`);
    const answer = await attacker.get('/account');
    expect(answer.status).toBe(303);
    expect(attacker.cookies.has(COOKIE)).toBe(false);

    expect(await loginsOf(user.id)).toEqual([]);
    expect(await sessionsOf(user.id)).toEqual([]);
    expect((await victim.get('/account')).status).toBe(303);
    const mail = await deliverMail(world);
    expect(mail.map((m) => [recipients(m), m.subject])).toEqual([[[user.email], 'We signed you out of Archway everywhere']]);
    expect(world.logText()).toContain('remember-me cookie theft suspected');
    expect(world.logText()).toContain('"reason":"wrong-token"');
    const audit = world.app.ctx.database.db.selectFrom('audit_log').select(['action', 'ip', 'detail']).where('subject', '=', user.id);
    expect(await audit.execute()).toEqual([{ action: 'remember-me.theft_suspected', ip: '192.0.2.66', detail: { reason: 'wrong-token' } }]);
    expect(world.logText()).not.toContain(cookie.split('.')[1]);
  });

  it('treats the old cookie coming back after the grace window as theft too: two browsers held it', async () => {
    const user = await createUser(world.app);
    await deliverMail(world);
    const { client, cookie } = await browserWithRememberCookie(user.id);
    expect((await client.get('/account')).status).toBe(200);
    clock().advance((ROTATION_GRACE_SECONDS + 1) * 1000);
    const copy = new WebClient(world.app);
    copy.cookies.set(COOKIE, cookie);
    expect((await copy.get('/account')).status).toBe(303);
    expect(await loginsOf(user.id)).toEqual([]);
    expect(await sessionsOf(user.id)).toEqual([]);
    expect((await client.get('/account')).status).toBe(303);
    expect((await deliverMail(world)).map((m) => m.subject)).toEqual(['We signed you out of Archway everywhere']);
    expect(world.logText()).toContain('"reason":"rotated-cookie-reused"');
  });

  it('lets two requests that arrive together with the same cookie both succeed, with no alarm', async () => {
    const user = await createUser(world.app);
    await deliverMail(world);
    const { cookie } = await browserWithRememberCookie(user.id);
    const before = world.logText().length;
    const send = () =>
      world.app.inject({ method: 'GET', url: '/account', headers: { cookie: `${COOKIE}=${cookie}` }, remoteAddress: '198.51.100.20' });
    const answers = await Promise.all([send(), send(), send()]);
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 200]);
    const issued = answers.map((a) => (a.cookies as Array<{ name: string; value: string }>).find((c) => c.name === COOKIE)?.value);
    expect(new Set(issued).size).toBe(1);
    expect(issued[0]).not.toBe(cookie);
    expect(world.logText().slice(before)).not.toContain('theft');
    expect(await deliverMail(world)).toEqual([]);
    const live = (await loginsOf(user.id)).filter((l) => l.replaced_at === null);
    expect(live).toHaveLength(1);
    expect(live[0]!.series).toBe(issued[0]!.split('.')[0]);
    // The new cookie works afterwards, as the browser will send it.
    clock().advance((ROTATION_GRACE_SECONDS + 1) * 1000);
    const next = await world.app.inject({ method: 'GET', url: '/account', headers: { cookie: `${COOKIE}=${issued[0]}` } });
    expect(next.statusCode).toBe(200);
  });

  it('does not sign in a suspended account, and ignores a malformed cookie', async () => {
    const user = await createUser(world.app);
    const { client } = await browserWithRememberCookie(user.id);
    await db().updateTable('users').set({ status: 'suspended' }).where('id', '=', user.id).execute();
    expect((await client.get('/account')).status).toBe(303);
    expect(await sessionsOf(user.id)).toEqual([]);
    for (const junk of ['', 'x', 'a.b', `${'a'.repeat(43)}.${'b'.repeat(43)}.c`, `${'a'.repeat(43)}.${'b'.repeat(42)}!`]) {
      const visitor = new WebClient(world.app);
      visitor.cookies.set(COOKIE, junk);
      expect((await visitor.get('/account')).status).toBe(303);
    }
  });

  it('is cleaned up hourly: expired logins go, and addresses older than the retention period are forgotten', async () => {
    const user = await createUser(world.app);
    await browserWithRememberCookie(user.id, '198.51.100.60');
    const start = clock().now();
    await forgetRememberLoginIps(db(), new Date(start.getTime() - 1000));
    expect((await loginsOf(user.id)).map((l) => l.ip)).toEqual(['198.51.100.60']);
    await forgetRememberLoginIps(db(), new Date(start.getTime() + 1000));
    expect((await loginsOf(user.id)).map((l) => l.ip)).toEqual([null]);
    await deleteExpiredRememberLogins(db(), new Date(start.getTime() + REMEMBER_DAYS * 86_400_000 - 1000));
    expect(await loginsOf(user.id)).toHaveLength(1);
    await deleteExpiredRememberLogins(db(), new Date(start.getTime() + REMEMBER_DAYS * 86_400_000 + 1000));
    expect(await loginsOf(user.id)).toEqual([]);
  });

  it('is not enough to change two-factor settings: those ask for the password again', async () => {
    const user = await createUser(world.app);
    const secret = await turnOnTwoFactor(world.app, user.id);
    const { client } = await browserWithRememberCookie(user.id);
    const settings = await client.get('/account/two-factor');
    expect(settings.status).toBe(200);
    const session = await db().selectFrom('sessions').select('data').where('user_id', '=', user.id).executeTakeFirstOrThrow();
    expect(session.data).toMatchObject({ rememberedSignIn: true });

    const off = await client.post('/account/two-factor/disable', { password: '', code: currentCode(world.app, secret) });
    expect(off.status).toBe(422);
    expect(off.body).toContain('Enter your password.');
    await client.get('/account/two-factor');
    const codes = await client.post('/account/two-factor/recovery-codes', { password: 'Guessing-Password-1' });
    expect(codes.status).toBe(422);
    expect(await db().selectFrom('two_factor').select('enabled_at').where('user_id', '=', user.id).execute()).toHaveLength(1);
    expect(await db().selectFrom('two_factor_recovery_codes').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    await deliverMail(world);
  });

  it("comes from the sign-in form's box, and sign-out ends this browser's login but not the others'", async () => {
    const user = await createUser(world.app);
    const plain = new WebClient(world.app);
    await plain.get('/sign-in');
    expect((await plain.post('/sign-in', { email: user.email, password: PASSWORD })).status).toBe(303);
    expect(plain.cookies.has(COOKIE)).toBe(false);

    const form = await new WebClient(world.app).get('/sign-in');
    expect(form.body).toContain('<input type="checkbox" id="remember" name="remember" value="on">');
    expect(form.body).toContain('<label for="remember">Keep me signed in on this computer for 5 days</label>');
    // A failed attempt keeps the box as it was ticked.
    const failed = new WebClient(world.app);
    await failed.get('/sign-in');
    const wrong = await failed.post('/sign-in', { email: user.email, password: 'Wrong-Password-1', remember: 'on' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toContain('<input type="checkbox" id="remember" name="remember" value="on" checked>');

    const laptop = new WebClient(world.app);
    await laptop.get('/sign-in');
    expect((await laptop.post('/sign-in', { email: user.email, password: PASSWORD, remember: 'on' })).location).toBe('/account');
    const cookie = laptop.cookies.get(COOKIE)!;
    const [row] = await db().selectFrom('remember_logins').selectAll().where('series', '=', cookie.split('.')[0]!).execute();
    expect(row!.user_id).toBe(user.id);
    expect(row!.expires_at.getTime() - row!.created_at.getTime()).toBe(REMEMBER_DAYS * 86_400_000);
    const phone = await browserWithRememberCookie(user.id);

    await laptop.get('/sign-out');
    const out = await laptop.post('/sign-out', {});
    expect(out.location).toBe('/sign-in?signed-out');
    expect(laptop.cookies.has(COOKIE)).toBe(false);
    expect(await db().selectFrom('remember_logins').select('id').where('series', '=', cookie.split('.')[0]!).execute()).toEqual([]);
    // The same cookie, kept by someone, no longer signs in.
    const replay = new WebClient(world.app);
    replay.cookies.set(COOKIE, cookie);
    expect((await replay.get('/account')).status).toBe(303);
    // The phone is still remembered.
    expect((await phone.client.get('/account')).status).toBe(200);
  });

  it('ends with a password reset, like every session', async () => {
    const user = await createUser(world.app);
    const { client } = await browserWithRememberCookie(user.id);
    await resetPassword(user.email);
    expect((await client.get('/account')).status).toBe(303);
    expect(await loginsOf(user.id)).toEqual([]);
  });
});

async function resetPassword(email: string): Promise<void> {
  const client = new WebClient(world.app);
  await client.get('/forgot-password');
  await client.post('/forgot-password', { email });
  await world.app.ctx.background.settle();
  const [message] = await deliverMail(world);
  await client.get(linkIn(message!));
  await client.get('/set-password');
  const done = await client.post('/set-password', { password: 'Lighthouse-Copper-77', password_confirm: 'Lighthouse-Copper-77' });
  expect(done.location).toBe('/set-password/done');
  await deliverMail(world);
}
