import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPasswordHasher } from '../../src/users/password-hasher.js';
import { addressHashKey, storedAddress } from '../../src/users/regulation.js';
import { SIGN_IN_FAILED_MESSAGE } from '../../src/auth/sign-in.service.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { createOperator, createUser, PASSWORD, signInOperator } from '../harness/users.js';

let subject: PortalWorld;

beforeAll(async () => {
  subject = await startPortalWorld();
});
afterAll(async () => {
  await subject.close();
});

async function attemptsFor(email: string) {
  return subject.app.ctx.database.db
    .selectFrom('sign_in_attempts')
    .select(['email_tried', 'user_id', 'ip', 'outcome', 'reason'])
    .where('email_tried', '=', email)
    .orderBy('id')
    .execute();
}

/** The error paragraph and the form as the user sees them, without the per-request CSRF token. */
function visibleAnswer(body: string): string {
  return body.replace(/name="_csrf" value="[^"]+"/g, 'name="_csrf" value=""').replace(/value="[^"]*@[^"]*"/g, 'value="(email)"');
}

describe('the sign-in page', () => {
  it('shows a labelled form a password manager understands, with the CSRF field', async () => {
    const page = await new WebClient(subject.app).get('/sign-in');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('<label for="email">Email address</label>');
    expect(page.body).toMatch(/<input type="email" id="email" name="email" value="" autocomplete="username" required>/);
    expect(page.body).toContain('<label for="password">Password</label>');
    expect(page.body).toContain('autocomplete="current-password"');
    expect(page.body).toMatch(/<input type="hidden" name="_csrf" value="[^"]{20,}">/);
    expect(page.body).toContain('href="/forgot-password"');
    expect(page.body).toContain('href="/what-we-store"');
  });

  it('signs a user in with the right password, records the IP and time, and sends them to their account', async () => {
    const user = await createUser(subject.app);
    const client = new WebClient(subject.app, { remoteAddress: '198.51.100.7' });
    const before = subject.clock.now();
    const answer = await client.signIn(user.email.toUpperCase(), PASSWORD);
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/account');

    const rows = await subject.app.ctx.database.db.selectFrom('sessions').selectAll().where('user_id', '=', user.id).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.ip).toBe('198.51.100.7');
    expect(rows[0]!.user_agent).toBe('lightMyRequest');
    expect(rows[0]!.created_at.getTime()).toBeGreaterThanOrEqual(before.getTime() - 5);
    expect(await attemptsFor(user.email.toUpperCase())).toEqual([
      { email_tried: user.email.toUpperCase(), user_id: user.id, ip: '198.51.100.7', outcome: 'success', reason: 'password' },
    ]);
    const signedIn = await client.get('/sign-out');
    expect(signedIn.status).toBe(200);
    expect(signedIn.body).toContain(user.email);
  });

  it('re-hashes a password stored with older argon2 parameters at the successful sign-in', async () => {
    const config = subject.app.ctx.config;
    const older = createPasswordHasher({
      auth: { ...config.auth, argon2: { ...config.auth.argon2, timeCost: config.auth.argon2.timeCost + 1 } },
      secrets: config.secrets,
    });
    const user = await createUser(subject.app, { password: null, status: 'active' });
    const oldHash = await older.hash(PASSWORD);
    await subject.app.ctx.database.db.updateTable('users').set({ password_hash: oldHash }).where('id', '=', user.id).execute();

    expect((await new WebClient(subject.app).signIn(user.email, PASSWORD)).status).toBe(303);
    const { password_hash } = await subject.app.ctx.database.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(password_hash).not.toBe(oldHash);
    expect(password_hash).toContain(`t=${config.auth.argon2.timeCost},`);
    expect((await subject.app.ctx.passwords.verify(password_hash!, PASSWORD)).needsRehash).toBe(false);
    // And the new hash works for the next sign-in.
    expect((await new WebClient(subject.app).signIn(user.email, PASSWORD)).status).toBe(303);
  });

  it('sends an operator to the operator area, and a user back to the page they asked for', async () => {
    const { operator, secret } = await createOperator(subject.app);
    expect((await signInOperator(subject.app, new WebClient(subject.app), operator.email, secret)).location).toBe('/operator');

    const user = await createUser(subject.app);
    const client = new WebClient(subject.app);
    const asked = await client.get('/operator');
    expect(asked.status).toBe(303);
    expect(asked.location).toBe('/sign-in?next=%2Foperator');
    const form = await client.get(asked.location!);
    expect(form.body).toContain('<input type="hidden" name="next" value="/operator">');
    const answer = await client.post('/sign-in', { email: user.email, password: PASSWORD, next: '/account?tab=payments' });
    expect(answer.location).toBe('/account?tab=payments');
  });

  it('never sends anyone to another site after signing in', async () => {
    const user = await createUser(subject.app);
    for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)']) {
      const client = new WebClient(subject.app);
      await client.get('/sign-in');
      const answer = await client.post('/sign-in', { email: user.email, password: PASSWORD, next });
      expect(answer.location).toBe('/account');
    }
  });

  it('gives the same answer for a wrong password, an unknown address, a suspended account and one not yet activated', async () => {
    const active = await createUser(subject.app);
    const suspended = await createUser(subject.app, { status: 'suspended' });
    const invited = await createUser(subject.app, { status: 'invited', password: null });

    const tries = [
      { email: active.email, password: 'Wrong-Password-1', reason: 'wrong_password', userId: active.id, outcome: 'failure' },
      { email: 'nobody-here@example.net', password: PASSWORD, reason: 'unknown_email', userId: null, outcome: 'failure' },
      { email: suspended.email, password: PASSWORD, reason: 'account_suspended', userId: suspended.id, outcome: 'refused' },
      { email: invited.email, password: PASSWORD, reason: 'no_password', userId: null as string | null, outcome: 'failure' },
    ];
    tries[3]!.userId = invited.id;
    const answers: string[] = [];
    for (const t of tries) {
      const client = new WebClient(subject.app);
      const answer = await client.signIn(t.email, t.password);
      expect(answer.status).toBe(401);
      expect(answer.body).toContain(`<p class="field-error" role="alert" id="sign-in-error">${SIGN_IN_FAILED_MESSAGE}</p>`);
      expect(answer.body).toContain(`value="${t.email}"`);
      expect(answer.body).not.toContain(t.password);
      expect(answer.headers['set-cookie']?.toString() ?? '').not.toMatch(/archway-session=[^;]/);
      answers.push(visibleAnswer(answer.body));
      // An address that named no account is kept only as a keyed fingerprint (it may be a password typed in the wrong field).
      const stored =
        t.userId === null ? storedAddress(addressHashKey(subject.app.ctx.config.secrets.passwordPepper), t.email, false) : t.email;
      expect(await attemptsFor(stored)).toEqual([
        { email_tried: stored, user_id: t.userId, ip: '127.0.0.1', outcome: t.outcome, reason: t.reason },
      ]);
    }
    expect(new Set(answers).size).toBe(1);
    expect(
      await subject.app.ctx.database.db
        .selectFrom('sessions')
        .select('id')
        .where('user_id', 'in', [active.id, suspended.id, invited.id])
        .execute(),
    ).toEqual([]);
  });

  it('costs as much for an unknown address as for a wrong password (one argon2 verification each)', async () => {
    const user = await createUser(subject.app);
    // CPU time of this process, not wall time: argon2 runs on this process's threads, and test files
    // running beside this one slow the clock but do not add to it.
    const cost = async (email: string) => {
      const client = new WebClient(subject.app, { remoteAddress: `192.0.2.${Math.floor(Math.random() * 200) + 1}` });
      await client.get('/sign-in');
      const start = process.cpuUsage();
      await client.post('/sign-in', { email, password: 'Wrong-Password-1' });
      const used = process.cpuUsage(start);
      return (used.user + used.system) / 1000;
    };
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    // One of each first: the first requests also pay for compiling code and for making the dummy hash.
    await cost(user.email);
    await cost('ghost@example.net');
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      known.push(await cost(user.email));
      unknown.push(await cost(`ghost${i}@example.net`));
    }
    // A missing dummy hash would make an unknown address cost a small fraction of a known one.
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.5);
    expect(median(unknown)).toBeLessThan(median(known) * 2);
  });

  it('asks for the missing fields without counting an attempt', async () => {
    const client = new WebClient(subject.app);
    await client.get('/sign-in');
    const answer = await client.post('/sign-in', { email: '  ', password: '' });
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('<p class="field-error" id="email-error">Enter your email address.</p>');
    expect(answer.body).toContain('<p class="field-error" id="password-error">Enter your password.</p>');
    expect(await attemptsFor('')).toEqual([]);
  });

  it('refuses an absurdly long password without hashing it', async () => {
    const user = await createUser(subject.app);
    const client = new WebClient(subject.app);
    await client.get('/sign-in');
    const answer = await client.post('/sign-in', { email: user.email, password: 'x'.repeat(5000) });
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('That password is longer than any we accept.');
    expect(await attemptsFor(user.email)).toEqual([]);
  });
});
