import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGN_IN_FAILED_MESSAGE } from '../../src/auth/sign-in.service.js';
import { purgeOldTwoFactorFailures, TWO_FACTOR_LIMITS, twoFactorBlockMinutes } from '../../src/two-factor/two-factor.regulation.js';
import { WebClient } from '../harness/web-client.js';
import { linkIn } from '../accounts/fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import {
  alignToMidStep,
  deliverMail,
  enrolThroughPages,
  passwordStep,
  phoneCode,
  recipients,
  signedInClient,
  signInWithCode,
  startWorld,
} from './fixtures.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world.close());

const db = () => world.app.ctx.database.db;
const clock = () => world.clock;
let ipCounter = 0;
const freshIp = () => `203.0.113.${(ipCounter += 1)}`;

/** A customer with two-factor on; returns the secret and recovery codes. */
async function enrolledUser() {
  const user = await createUser(world.app);
  const client = await signedInClient(world.app, user.email, PASSWORD);
  const { secret, recoveryCodes } = await enrolThroughPages(client, clock(), PASSWORD);
  // The enrolling browser signs out, so the sessions counted below are the test's own.
  await client.get('/sign-out');
  expect((await client.post('/sign-out', {})).location).toBe('/sign-in?signed-out');
  await deliverMail(world);
  alignToMidStep(clock());
  return { user, secret, recoveryCodes };
}

async function sessionsOf(userId: string) {
  return db().selectFrom('sessions').select(['id', 'user_id']).where('user_id', '=', userId).execute();
}

function otherCode(code: string): string {
  return code === '000000' ? '000001' : '000000';
}

describe('signing in with two-factor on', () => {
  it('asks for a code on its own page after the right password, and the right code signs in', async () => {
    const { user, secret } = await enrolledUser();
    const client = new WebClient(world.app, { remoteAddress: freshIp() });
    const first = await passwordStep(client, user.email, PASSWORD);
    expect(first.status).toBe(303);
    expect(first.location).toBe('/sign-in/two-factor');
    expect(await sessionsOf(user.id)).toEqual([]);

    const page = await client.get('/sign-in/two-factor');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('<label for="code">Code</label>');
    expect(page.body).toContain('autocomplete="one-time-code"');

    const answer = await client.post('/sign-in/two-factor', { code: phoneCode(clock(), secret) });
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/account');
    expect(await sessionsOf(user.id)).toHaveLength(1);
    expect((await client.get('/account')).status).toBe(200);
  });

  it('gives the same generic failure for a wrong password, and no second step', async () => {
    const { user } = await enrolledUser();
    const client = new WebClient(world.app, { remoteAddress: freshIp() });
    const answer = await passwordStep(client, user.email, 'Wrong-Password-1');
    expect(answer.status).toBe(401);
    expect(answer.body).toContain(SIGN_IN_FAILED_MESSAGE);
    expect((await client.get('/sign-in/two-factor')).location).toBe('/sign-in');
  });

  it('refuses the same code a second time (replay), even for a new sign-in', async () => {
    const { user, secret } = await enrolledUser();
    const code = phoneCode(clock(), secret);
    expect((await signInWithCode(new WebClient(world.app, { remoteAddress: freshIp() }), user.email, PASSWORD, code)).location).toBe(
      '/account',
    );

    const thief = new WebClient(world.app, { remoteAddress: freshIp() });
    const replay = await signInWithCode(thief, user.email, PASSWORD, code);
    expect(replay.status).toBe(401);
    expect(replay.body).toContain('That code did not work.');
    expect((await thief.get('/account')).status).toBe(303);
    // An older code than the last one used is refused too, though it is within the drift window.
    await thief.get('/sign-in/two-factor');
    const older = await thief.post('/sign-in/two-factor', { code: phoneCode(clock(), secret, 1) });
    expect(older.status).toBe(401);
    expect(await sessionsOf(user.id)).toHaveLength(1);
  });

  it('accepts the code of one step ago (a phone a little behind) but not of two steps ago', async () => {
    const { user, secret } = await enrolledUser();
    clock().advance(5 * 30_000);
    alignToMidStep(clock());
    const twoAgo = new WebClient(world.app, { remoteAddress: freshIp() });
    const stale = await signInWithCode(twoAgo, user.email, PASSWORD, phoneCode(clock(), secret, 2));
    expect(stale.status).toBe(401);
    expect((await twoAgo.get('/account')).status).toBe(303);

    const oneAgo = new WebClient(world.app, { remoteAddress: freshIp() });
    expect((await signInWithCode(oneAgo, user.email, PASSWORD, phoneCode(clock(), secret, 1))).location).toBe('/account');
  });

  it('accepts each recovery code once, emails the user, and counts down on the account page', async () => {
    const { user, recoveryCodes } = await enrolledUser();
    const code = recoveryCodes[3]!;
    const client = new WebClient(world.app, { remoteAddress: freshIp() });
    // Typed in capitals with spaces, as someone reading it off paper might.
    const answer = await signInWithCode(client, user.email, PASSWORD, ` ${code.toUpperCase().replace(/-/g, ' ')} `);
    expect(answer.location).toBe('/account');
    expect((await client.get('/account/two-factor')).body).toContain('You have <strong>9</strong> unused recovery codes of 10.');
    expect((await client.get('/account')).body).toMatch(/<p id="two-factor-summary">On since [^;]+ UTC; 9 of 10 recovery codes left\./);
    const mail = await deliverMail(world);
    expect(mail.map((m) => [recipients(m), m.subject])).toEqual([
      [[user.email], 'A recovery code was used to sign in to your Archway account'],
    ]);
    expect(mail[0]!.text).toContain('9 of your 10 codes are left');
    const used = await db()
      .selectFrom('two_factor_recovery_codes')
      .select('used_at')
      .where('user_id', '=', user.id)
      .where('used_at', 'is not', null)
      .execute();
    expect(used).toHaveLength(1);

    const again = new WebClient(world.app, { remoteAddress: freshIp() });
    const reuse = await signInWithCode(again, user.email, PASSWORD, code);
    expect(reuse.status).toBe(401);
    expect((await again.get('/account')).status).toBe(303);
    // Another user's code does not work for this account either.
    const someoneElse = await enrolledUser();
    const crossed = await signInWithCode(
      new WebClient(world.app, { remoteAddress: freshIp() }),
      user.email,
      PASSWORD,
      someoneElse.recoveryCodes[0]!,
    );
    expect(crossed.status).toBe(401);
  });

  it('blocks the step after too many wrong codes, even for the right code, and emails the user', async () => {
    const { user, secret } = await enrolledUser();
    const ips = [freshIp(), freshIp()];
    const client = new WebClient(world.app, { remoteAddress: ips[0] });
    expect((await passwordStep(client, user.email, PASSWORD)).location).toBe('/sign-in/two-factor');
    await client.get('/sign-in/two-factor');
    const wrong = otherCode(phoneCode(clock(), secret));
    for (let i = 0; i < TWO_FACTOR_LIMITS.userMaxFailures; i += 1) {
      const answer = await client.post('/sign-in/two-factor', { code: wrong });
      expect(answer.status).toBe(401);
    }
    const blocked = await client.post('/sign-in/two-factor', { code: phoneCode(clock(), secret) });
    expect(blocked.status).toBe(429);
    expect(blocked.body).toContain('Too many wrong codes.');
    // From another address too: the block is on the account's second step.
    const elsewhere = new WebClient(world.app, { remoteAddress: ips[1] });
    expect((await signInWithCode(elsewhere, user.email, PASSWORD, phoneCode(clock(), secret))).status).toBe(429);
    expect(await sessionsOf(user.id)).toEqual([]);
    const blocks = await db().selectFrom('two_factor_blocks').select(['scope', 'key']).where('key', '=', user.id).execute();
    expect(blocks).toEqual([{ scope: 'user', key: user.id }]);
    const mail = await deliverMail(world);
    expect(mail.map((m) => [recipients(m), m.subject])).toEqual([[[user.email], 'Too many wrong codes for your Archway account']]);
    // Wrong codes are not wrong passwords: the sign-in regulation did not count them.
    expect(
      await db().selectFrom('sign_in_attempts').select('id').where('user_id', '=', user.id).where('outcome', '=', 'failure').execute(),
    ).toEqual([]);

    clock().advance(TWO_FACTOR_LIMITS.userBlockMinutes * 60_000 + 1000);
    alignToMidStep(clock());
    const later = new WebClient(world.app, { remoteAddress: freshIp() });
    expect((await signInWithCode(later, user.email, PASSWORD, phoneCode(clock(), secret))).location).toBe('/account');
  });

  it('blocks an address that guesses codes across accounts', async () => {
    const ip = freshIp();
    let guesses = 0;
    const people = [];
    while (guesses < TWO_FACTOR_LIMITS.ipMaxFailures) {
      const person = await enrolledUser();
      people.push(person);
      const client = new WebClient(world.app, { remoteAddress: ip });
      await passwordStep(client, person.user.email, PASSWORD);
      await client.get('/sign-in/two-factor');
      for (let i = 0; i < TWO_FACTOR_LIMITS.userMaxFailures - 1 && guesses < TWO_FACTOR_LIMITS.ipMaxFailures; i += 1, guesses += 1) {
        expect((await client.post('/sign-in/two-factor', { code: otherCode(phoneCode(clock(), person.secret)) })).status).toBe(401);
      }
    }
    const fresh = await enrolledUser();
    const fromThere = await signInWithCode(
      new WebClient(world.app, { remoteAddress: ip }),
      fresh.user.email,
      PASSWORD,
      phoneCode(clock(), fresh.secret),
    );
    expect(fromThere.status).toBe(429);
    const fromElsewhere = await signInWithCode(
      new WebClient(world.app, { remoteAddress: freshIp() }),
      fresh.user.email,
      PASSWORD,
      phoneCode(clock(), fresh.secret),
    );
    expect(fromElsewhere.location).toBe('/account');
    await deliverMail(world);
  });
});

describe('the length of second-step blocks', () => {
  it('doubles with each block of the same account or address within a week, up to a day', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((level) => twoFactorBlockMinutes('user', level))).toEqual([15, 30, 60, 120, 240, 480, 960, 1440]);
    expect([1, 2, 3, 5, 30].map((level) => twoFactorBlockMinutes('ip', level))).toEqual([60, 120, 240, 960, 1440]);
  });

  it('forgets wrong-code rows (and their addresses) after half an hour, and ended address blocks within the IP retention', async () => {
    const user = await createUser(world.app);
    const now = clock().now();
    const at = (minutesAgo: number) => new Date(now.getTime() - minutesAgo * 60_000);
    await db()
      .insertInto('two_factor_failures')
      .values([
        { at: at(31), user_id: user.id, ip: '192.0.2.201' },
        { at: at(5), user_id: user.id, ip: '192.0.2.202' },
      ])
      .execute();
    await db()
      .insertInto('two_factor_blocks')
      .values([
        { scope: 'ip', key: '192.0.2.203', until: at(2 * 24 * 60), created_at: at(2 * 24 * 60 + 60) },
        { scope: 'user', key: user.id, until: at(2 * 24 * 60), created_at: at(2 * 24 * 60 + 60) },
      ])
      .execute();
    await purgeOldTwoFactorFailures(db(), now, 1);
    expect(await db().selectFrom('two_factor_failures').select('ip').where('user_id', '=', user.id).execute()).toEqual([
      { ip: '192.0.2.202' },
    ]);
    expect(await db().selectFrom('two_factor_blocks').select('key').where('key', 'in', ['192.0.2.203', user.id]).execute()).toEqual([
      { key: user.id },
    ]);
  });
});

describe('the half-signed-in state', () => {
  it('reaches no account page, and after 5 minutes the password must be entered again', async () => {
    const { user, secret } = await enrolledUser();
    const client = new WebClient(world.app, { remoteAddress: freshIp() });
    expect((await passwordStep(client, user.email, PASSWORD)).location).toBe('/sign-in/two-factor');
    for (const path of ['/account', '/account/two-factor', '/account/devices', '/account/two-factor/enrol', '/operator']) {
      const answer = await client.get(path);
      expect(answer.status).toBe(303);
      expect(answer.location).toBe(`/sign-in?next=${encodeURIComponent(path)}`);
    }
    const rows = await db().selectFrom('sessions').select(['user_id', 'data']).where('user_id', 'is', null).execute();
    expect(rows.some((r) => (r.data as { twoFactorPending?: { userId: string } }).twoFactorPending?.userId === user.id)).toBe(true);

    expect((await client.get('/sign-in/two-factor')).status).toBe(200);
    clock().advance(5 * 60_000);
    alignToMidStep(clock());
    const late = await client.post('/sign-in/two-factor', { code: phoneCode(clock(), secret) });
    expect(late.status).toBe(303);
    expect(late.location).toBe('/sign-in');
    expect((await client.get('/sign-in/two-factor')).location).toBe('/sign-in');
    expect((await client.get('/account')).status).toBe(303);
    expect(await sessionsOf(user.id)).toEqual([]);
  });
});

describe('password reset with two-factor on', () => {
  it('ends a half-finished sign-in (password given, code not yet) when the password is reset', async () => {
    const { user, secret } = await enrolledUser();
    // Someone who knew the old password got as far as the code page.
    const thief = new WebClient(world.app, { remoteAddress: freshIp() });
    expect((await passwordStep(thief, user.email, PASSWORD)).location).toBe('/sign-in/two-factor');
    await thief.get('/sign-in/two-factor');

    const owner = new WebClient(world.app, { remoteAddress: freshIp() });
    await owner.get('/forgot-password');
    await owner.post('/forgot-password', { email: user.email });
    await world.app.ctx.background.settle();
    const [message] = await deliverMail(world);
    await owner.get(linkIn(message!));
    await owner.get('/set-password');
    const NEW_PASSWORD = 'Lighthouse-Copper-78';
    expect((await owner.post('/set-password', { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD })).location).toBe(
      '/set-password/done',
    );
    const pending = await db()
      .selectFrom('sessions')
      .select('id')
      .where(sql<boolean>`data->'twoFactorPending'->>'userId' = ${user.id}`)
      .execute();
    expect(pending).toEqual([]);

    // Even with a right code (a phone nearby, a phished code), the old password's half sign-in leads nowhere.
    const answer = await thief.post('/sign-in/two-factor', { code: phoneCode(clock(), secret) });
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/sign-in');
    expect((await thief.get('/account')).status).toBe(303);
    expect(await sessionsOf(user.id)).toEqual([]);
  });

  it('does not skip the second step: the reset signs nobody in, and the new password still asks for a code', async () => {
    const { user, secret } = await enrolledUser();
    const client = new WebClient(world.app, { remoteAddress: freshIp() });
    await client.get('/forgot-password');
    await client.post('/forgot-password', { email: user.email });
    await world.app.ctx.background.settle();
    const [message] = await deliverMail(world);
    await client.get(linkIn(message!));
    await client.get('/set-password');
    const NEW_PASSWORD = 'Lighthouse-Copper-77';
    const done = await client.post('/set-password', { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD });
    expect(done.status).toBe(303);
    expect(done.location).toBe('/set-password/done');
    expect((await client.get('/account')).status).toBe(303);
    expect(await sessionsOf(user.id)).toEqual([]);
    await deliverMail(world);

    const first = await passwordStep(client, user.email, NEW_PASSWORD);
    expect(first.location).toBe('/sign-in/two-factor');
    expect((await client.get('/account')).status).toBe(303);
    await client.get('/sign-in/two-factor');
    expect((await client.post('/sign-in/two-factor', { code: phoneCode(clock(), secret) })).location).toBe('/account');
  });
});
