import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endUserSessions } from '../../src/users/session.service.js';
import { sessionKey } from '../../src/users/session.store.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { createUser, PASSWORD } from '../harness/users.js';

let subject: PortalWorld;
const COOKIE = 'archway-session';
/** Called with the slow page's release once its request is running; the page answers only when released. */
let slowPageRunning: (release: () => void) => void = (release) => release();

beforeAll(async () => {
  subject = await startPortalWorld({
    testRoutes: (app) =>
      app.get('/test/slow-page', async () => {
        await new Promise<void>((release) => slowPageRunning(release));
        return 'done';
      }),
  });
});
afterAll(async () => {
  await subject.close();
});

/** The session id inside the signed cookie value ("<id>.<signature>"). */
function idOf(cookieValue: string): string {
  return decodeURIComponent(cookieValue).split('.')[0]!;
}

async function sessionRows(userId: string) {
  return subject.app.ctx.database.db.selectFrom('sessions').selectAll().where('user_id', '=', userId).execute();
}

/** GET /sign-out shows its page only to a signed-in user: a cheap probe of "still signed in?". */
async function isSignedIn(client: WebClient): Promise<boolean> {
  const page = await client.get('/sign-out');
  return page.status === 200;
}

async function signedInClient() {
  const user = await createUser(subject.app);
  const client = new WebClient(subject.app);
  const answer = await client.signIn(user.email, PASSWORD);
  expect(answer.status).toBe(303);
  return { user, client };
}

describe('the session', () => {
  it('gives a visitor who is not signed in no session cookie and no row', async () => {
    const client = new WebClient(subject.app);
    const page = await client.get('/sign-in');
    expect(page.status).toBe(200);
    expect(client.cookies.has(COOKIE)).toBe(false);
    expect(await subject.app.ctx.database.db.selectFrom('sessions').select('id').where('user_id', 'is', null).execute()).toEqual([]);
  });

  it('keeps only a hash of a random 256-bit id on the server', async () => {
    const { user, client } = await signedInClient();
    const id = idOf(client.cookies.get(COOKIE)!);
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const [row] = await sessionRows(user.id);
    expect(row!.id).toBe(sessionKey(id));
    expect(row!.id).not.toContain(id);
    expect(JSON.stringify(row)).not.toContain(id);
  });

  it('issues a new id at sign-in, so a planted id is worth nothing (fixation)', async () => {
    const user = await createUser(subject.app);
    const planted = 'planted-by-attacker-0123456789abcdefghijklmn';
    const victim = new WebClient(subject.app);
    victim.cookies.set(COOKIE, planted);
    await victim.signIn(user.email, PASSWORD);
    const issued = victim.cookies.get(COOKIE)!;
    expect(idOf(issued)).not.toBe(planted);
    expect(await subject.app.ctx.database.db.selectFrom('sessions').select('id').where('id', '=', sessionKey(planted)).execute()).toEqual(
      [],
    );
  });

  it('replaces the session when someone signs in over an existing one, and the old cookie stops working', async () => {
    const first = await createUser(subject.app);
    const second = await createUser(subject.app);
    const client = new WebClient(subject.app);
    await client.signIn(first.email, PASSWORD);
    const oldCookie = client.cookies.get(COOKIE)!;
    await client.get('/sign-out'); // a page with a form token for the signed-in user
    const answer = await client.post('/sign-in', { email: second.email, password: PASSWORD });
    expect(answer.status).toBe(303);
    expect(client.cookies.get(COOKIE)).not.toBe(oldCookie);
    expect(await sessionRows(first.id)).toEqual([]);
    expect(await sessionRows(second.id)).toHaveLength(1);

    const replay = new WebClient(subject.app);
    replay.cookies.set(COOKIE, oldCookie);
    expect(await isSignedIn(replay)).toBe(false);
  });

  it('sets the cookie HttpOnly, SameSite=Lax, Path=/, with no lifetime of its own', async () => {
    const user = await createUser(subject.app);
    const client = new WebClient(subject.app);
    const answer = await client.signIn(user.email, PASSWORD);
    const header = [answer.headers['set-cookie']].flat().find((c) => c?.startsWith(`${COOKIE}=`))!;
    expect(header).toMatch(/^archway-session=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/);
  });

  it('ends after 24 minutes without a request, however long it was active before', async () => {
    const { user, client } = await signedInClient();
    subject.clock.advanceMinutes(23);
    expect(await isSignedIn(client)).toBe(true);
    subject.clock.advanceMinutes(23);
    expect(await isSignedIn(client)).toBe(true);
    subject.clock.advanceMinutes(24);
    expect(await isSignedIn(client)).toBe(false);
    expect(await sessionRows(user.id)).toEqual([]);
  });

  it('ends 12 hours after sign-in even when used all the time', async () => {
    const { user, client } = await signedInClient();
    for (let minutes = 0; minutes < 12 * 60 - 20; minutes += 20) {
      subject.clock.advanceMinutes(20);
      expect(await isSignedIn(client)).toBe(true);
    }
    subject.clock.advanceMinutes(20);
    expect(await isSignedIn(client)).toBe(false);
    expect(await sessionRows(user.id)).toEqual([]);
  });

  it('signs out with a POST that destroys the row, so the old cookie is useless even if replayed', async () => {
    const { user, client } = await signedInClient();
    const cookie = client.cookies.get(COOKIE)!;
    await client.get('/sign-out');
    const answer = await client.post('/sign-out', {});
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/sign-in?signed-out');
    expect([answer.headers['set-cookie']].flat().join('\n')).toMatch(
      /archway-session=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax/,
    );
    expect(await sessionRows(user.id)).toEqual([]);

    const after = await client.get('/sign-in?signed-out');
    expect(after.body).toContain('You have signed out.');
    const replay = new WebClient(subject.app);
    replay.cookies.set(COOKIE, cookie);
    expect(await isSignedIn(replay)).toBe(false);
  });

  it('signs out quietly from a page left open after the session expired, instead of a form error', async () => {
    const { user, client } = await signedInClient();
    await client.get('/account'); // the nav's sign-out form, with a token for this user
    subject.clock.advanceMinutes(30); // past the 24-minute idle limit
    const answer = await client.post('/sign-out', {});
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/sign-in?signed-out');
    expect(await sessionRows(user.id)).toEqual([]);
  });

  it('still refuses a forged sign-out of a browser that is signed in', async () => {
    const { user, client } = await signedInClient();
    await client.get('/account');
    const forged = await client.post('/sign-out', { _csrf: 'forged' });
    expect(forged.status).toBe(403);
    expect(await sessionRows(user.id)).toHaveLength(1);
  });

  it('does not sign out on a GET', async () => {
    const { user, client } = await signedInClient();
    const page = await client.get('/sign-out');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<form method="post" action="/sign-out">');
    expect(await sessionRows(user.id)).toHaveLength(1);
  });

  it('ends the session of an account suspended meanwhile at its next request', async () => {
    const { user, client } = await signedInClient();
    await subject.app.ctx.database.db.updateTable('users').set({ status: 'suspended' }).where('id', '=', user.id).execute();
    expect(await isSignedIn(client)).toBe(false);
    expect(await sessionRows(user.id)).toEqual([]);
  });

  it('ends every session of a user but the one kept (password reset, 2FA changes)', async () => {
    const user = await createUser(subject.app);
    const laptop = new WebClient(subject.app);
    const phone = new WebClient(subject.app);
    const tablet = new WebClient(subject.app);
    for (const c of [laptop, phone, tablet]) await c.signIn(user.email, PASSWORD);
    expect(await sessionRows(user.id)).toHaveLength(3);

    const kept = idOf(laptop.cookies.get(COOKIE)!);
    expect(await endUserSessions(subject.app.ctx.database.db, user.id, { exceptSessionId: kept })).toBe(2);
    expect(await isSignedIn(laptop)).toBe(true);
    expect(await isSignedIn(phone)).toBe(false);
    expect(await isSignedIn(tablet)).toBe(false);

    expect(await endUserSessions(subject.app.ctx.database.db, user.id)).toBe(1);
    expect(await isSignedIn(laptop)).toBe(false);
  });

  it('does not bring back a session ended while one of its requests was still running', async () => {
    const { user, client } = await signedInClient();
    const cookie = client.cookies.get(COOKIE)!;
    const running = new Promise<() => void>((resolve) => (slowPageRunning = resolve));
    const slow = client.get('/test/slow-page');
    const release = await running;
    await endUserSessions(subject.app.ctx.database.db, user.id);
    release();
    expect((await slow).status).toBe(200);
    expect(await sessionRows(user.id)).toEqual([]);
    const replay = new WebClient(subject.app);
    replay.cookies.set(COOKIE, cookie);
    expect(await isSignedIn(replay)).toBe(false);
  });
});
