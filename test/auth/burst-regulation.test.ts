// Brute-force limits under real concurrency on PostgreSQL: a burst sent all at once gets no more guesses than a slow one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGN_IN_FAILED_MESSAGE } from '../../src/auth/sign-in.service.js';
import { TWO_FACTOR_LIMITS } from '../../src/two-factor/two-factor.regulation.js';
import { WebClient } from '../harness/web-client.js';
import {
  alignToMidStep,
  deliverMail,
  enrolThroughPages,
  passwordStep,
  phoneCode,
  signedInClient,
  startWorld,
} from '../two-factor/fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world.close());

const db = () => world.app.ctx.database.db;
let ipCounter = 0;
const freshIp = () => `198.51.100.${(ipCounter += 1)}`;

async function enrolledUser() {
  const user = await createUser(world.app);
  const client = await signedInClient(world.app, user.email, PASSWORD);
  const { secret } = await enrolThroughPages(client, world.clock, PASSWORD);
  await deliverMail(world);
  alignToMidStep(world.clock);
  return { user, secret };
}

/** A code that is not the phone's current one nor its neighbours. */
function wrongCode(secret: Buffer): string {
  const near = new Set([-1, 0, 1].map((s) => phoneCode(world.clock, secret, s)));
  for (let n = 0; ; n += 1) {
    const code = String(n).padStart(6, '0');
    if (!near.has(code)) return code;
  }
}

async function queuedMail(template: string, recipient: string) {
  return db().selectFrom('mail_queue').select('id').where('template', '=', template).where('recipient', '=', recipient).execute();
}

describe('a burst of wrong codes at the second step', () => {
  it('checks at most the limit of 40 codes sent at once, and starts one block with one email', async () => {
    const { user, secret } = await enrolledUser();
    const client = new WebClient(world.app, { remoteAddress: freshIp() });
    expect((await passwordStep(client, user.email, PASSWORD)).location).toBe('/sign-in/two-factor');
    await client.get('/sign-in/two-factor');
    const code = wrongCode(secret);

    const answers = await Promise.all(Array.from({ length: 40 }, () => client.post('/sign-in/two-factor', { code })));

    const statuses = answers.map((a) => a.status);
    // 401: the code was checked and was wrong; 429: refused before any check.
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(TWO_FACTOR_LIMITS.userMaxFailures);
    expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
    const checked = await db().selectFrom('two_factor_failures').select('id').where('user_id', '=', user.id).execute();
    expect(checked.length).toBeLessThanOrEqual(TWO_FACTOR_LIMITS.userMaxFailures);
    const blocks = await db().selectFrom('two_factor_blocks').select(['scope', 'key']).where('key', '=', user.id).execute();
    expect(blocks).toEqual([{ scope: 'user', key: user.id }]);
    expect(await queuedMail('two-factor-blocked', user.email)).toHaveLength(1);

    // The owner's right code is refused while the block lasts.
    const owner = new WebClient(world.app, { remoteAddress: freshIp() });
    await passwordStep(owner, user.email, PASSWORD);
    await owner.get('/sign-in/two-factor');
    expect((await owner.post('/sign-in/two-factor', { code: phoneCode(world.clock, secret) })).status).toBe(429);
  });

  it('counts wrong codes from one IPv6 /64 together, whatever the address inside it', async () => {
    const prefix = '2001:db8:77:1';
    const limit = TWO_FACTOR_LIMITS.ipMaxFailures;
    // Each account gets fewer wrong codes than its own limit, so only the address limit can stop them.
    const perUser = TWO_FACTOR_LIMITS.userMaxFailures - 1;
    let sent = 0;
    let host = 1;
    const statuses: number[] = [];
    while (sent <= limit) {
      const { user, secret } = await enrolledUser();
      for (let i = 0; i < perUser && sent <= limit; i += 1, sent += 1) {
        const client = new WebClient(world.app, { remoteAddress: `${prefix}::${(host += 1).toString(16)}` });
        await passwordStep(client, user.email, PASSWORD);
        await client.get('/sign-in/two-factor');
        statuses.push((await client.post('/sign-in/two-factor', { code: wrongCode(secret) })).status);
      }
    }
    expect(statuses.slice(0, limit).every((s) => s === 401)).toBe(true);
    expect(statuses[limit]).toBe(429);
    const blocks = await db().selectFrom('two_factor_blocks').select(['scope', 'key']).where('scope', '=', 'ip').execute();
    expect(blocks).toEqual([{ scope: 'ip', key: `${prefix}::/64` }]);
  });
});

describe('a burst of wrong passwords', () => {
  it('verifies at most the limit of 30 passwords sent at once for one account, and starts one block', async () => {
    const user = await createUser(world.app);
    const ip = freshIp();
    const verified: string[] = [];
    const passwords = world.app.ctx.passwords;
    const realVerify = passwords.verify.bind(passwords);
    // Counts the argon2 verifications against the account's real hash (the dummy work of a refusal is not one).
    passwords.verify = async (stored, password) => {
      if (stored === user.passwordHash) verified.push(password);
      return realVerify(stored, password);
    };
    try {
      const clients = Array.from({ length: 30 }, () => new WebClient(world.app, { remoteAddress: ip }));
      for (const client of clients) await client.get('/sign-in');
      const answers = await Promise.all(
        clients.map((client, i) => client.post('/sign-in', { email: user.email, password: `Wrong-Password-${i}` })),
      );
      for (const answer of answers) {
        expect(answer.status).toBe(401);
        expect(answer.body).toContain(SIGN_IN_FAILED_MESSAGE);
      }
    } finally {
      passwords.verify = realVerify;
    }
    const limit = world.app.ctx.config.auth.regulation.userMaxFailures;
    expect(verified.length).toBeGreaterThan(0);
    expect(verified.length).toBeLessThanOrEqual(limit);
    const failures = await db()
      .selectFrom('sign_in_attempts')
      .select('reason')
      .where('user_id', '=', user.id)
      .where('outcome', '=', 'failure')
      .execute();
    expect(failures.length).toBe(verified.length);
    const blocks = await db()
      .selectFrom('blocks')
      .select(['scope', 'key'])
      .where('scope', '=', 'user')
      .where('key', '=', user.id)
      .execute();
    expect(blocks).toEqual([{ scope: 'user', key: user.id }]);
  });
});
