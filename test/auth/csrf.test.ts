import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { csrfTokenIn, WebClient } from '../harness/web-client.js';
import { createOperator, createUser, PASSWORD, signInOperator } from '../harness/users.js';

let subject: PortalWorld;
let changes = 0;

beforeAll(async () => {
  subject = await startPortalWorld({
    // A route written without any thought of CSRF: the global check must still cover it.
    testRoutes: (app) =>
      app.route({ method: ['POST', 'PUT', 'PATCH', 'DELETE'], url: '/test/change', handler: async () => ({ changed: ++changes }) }),
  });
});
afterAll(async () => {
  await subject.close();
});

const db = () => subject.app.ctx.database.db;

async function signedIn() {
  const user = await createUser(subject.app);
  const client = new WebClient(subject.app);
  await client.signIn(user.email, PASSWORD);
  await client.get('/sign-out');
  return { user, client, token: csrfTokenIn(client.lastPage!.body)! };
}

function expectRefused(answer: { status: number; body: string }) {
  expect(answer.status).toBe(403);
  expect(answer.body).toContain('This form has expired or did not come from this site.');
}

describe('CSRF protection', () => {
  it('refuses a sign-out POST without a token, and the user stays signed in', async () => {
    const { user, client } = await signedIn();
    const answer = await client.request({
      method: 'POST',
      url: '/sign-out',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: '',
    });
    expectRefused(answer);
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toHaveLength(1);
    expect((await client.get('/sign-out')).status).toBe(200);
  });

  it('refuses a sign-out POST with a wrong or altered token', async () => {
    const { user, client, token } = await signedIn();
    for (const bad of ['wrong', `${token.slice(0, -2)}xx`, '']) {
      expectRefused(await client.post('/sign-out', { _csrf: bad }));
    }
    // The right token twice (an array after parsing) is not a token.
    expectRefused(
      await client.request({
        method: 'POST',
        url: '/sign-out',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `_csrf=${encodeURIComponent(token)}&_csrf=${encodeURIComponent(token)}`,
      }),
    );
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toHaveLength(1);
  });

  it('refuses a token from another browser, and one sent in a header instead of the form', async () => {
    const victim = await signedIn();
    const attacker = await signedIn();
    expectRefused(await victim.client.post('/sign-out', { _csrf: attacker.token }));
    expectRefused(
      await victim.client.request({
        method: 'POST',
        url: '/sign-out',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': victim.token },
        payload: '',
      }),
    );
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', victim.user.id).execute()).toHaveLength(1);
  });

  it('refuses a token picked up before signing in, once signed in', async () => {
    const user = await createUser(subject.app);
    const client = new WebClient(subject.app);
    await client.get('/sign-in');
    const visitorToken = csrfTokenIn(client.lastPage!.body)!;
    await client.post('/sign-in', { email: user.email, password: PASSWORD });
    expectRefused(await client.post('/sign-out', { _csrf: visitorToken }));
  });

  it('refuses a sign-in POST without a token and records no attempt', async () => {
    const user = await createUser(subject.app);
    const answer = await subject.app.inject({
      method: 'POST',
      url: '/sign-in',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `email=${encodeURIComponent(user.email)}&password=${PASSWORD}`,
    });
    expectRefused({ status: answer.statusCode, body: answer.body });
    expect(answer.headers['set-cookie']?.toString() ?? '').not.toContain('archway-session=');
    expect(await db().selectFrom('sign_in_attempts').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('refuses an operator unblock without a token and the block stays', async () => {
    const { operator, secret } = await createOperator(subject.app);
    const client = new WebClient(subject.app);
    await signInOperator(subject.app, client, operator.email, secret);
    const now = subject.clock.now();
    const block = await db()
      .insertInto('blocks')
      .values({ scope: 'ip', key: '192.0.2.44', until: new Date(now.getTime() + 3_600_000), level: 1, created_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    expect((await client.get('/operator')).status).toBe(200);
    expectRefused(await client.post(`/operator/blocks/${block.id}/unblock`, { _csrf: 'forged' }));
    const row = await db().selectFrom('blocks').select(['lifted_at', 'lifted_by']).where('id', '=', block.id).executeTakeFirstOrThrow();
    expect(row).toEqual({ lifted_at: null, lifted_by: null });
  });

  it('checks every state-changing method on every route, with no way for a route to forget it', async () => {
    const { client, token } = await signedIn();
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      const answer = await client.request({
        method,
        url: '/test/change',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'a=1',
      });
      expectRefused(answer);
    }
    expect(changes).toBe(0);
    const allowed = await client.request({
      method: 'DELETE',
      url: '/test/change',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `_csrf=${encodeURIComponent(token)}`,
    });
    expect(allowed.status).toBe(200);
    expect(changes).toBe(1);
  });
});
