import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGN_IN_FAILED_MESSAGE } from '../../src/auth/sign-in.service.js';
import { addressBlockKey, addressHashKey, blockDurationMs, storedAddress } from '../../src/users/regulation.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { createOperator, createUser, PASSWORD, signInOperator } from '../harness/users.js';

let subject: PortalWorld;
let nextIp = 1;

beforeAll(async () => {
  subject = await startPortalWorld({
    env: {
      ARCHWAY_SIGNIN_IP_MAX_FAILURES: '6',
      ARCHWAY_SIGNIN_IP_WINDOW_MINUTES: '15',
      ARCHWAY_SIGNIN_IP_BLOCK_MINUTES: '15',
      ARCHWAY_SIGNIN_IP_BLOCK_MAX_MINUTES: '1440',
      ARCHWAY_SIGNIN_USER_MAX_FAILURES: '3',
      ARCHWAY_SIGNIN_USER_WINDOW_MINUTES: '15',
      ARCHWAY_SIGNIN_USER_BLOCK_SECONDS: '60',
      ARCHWAY_SIGNIN_USER_BLOCK_MAX_MINUTES: '15',
    },
  });
});
afterAll(async () => {
  await subject.close();
});

const db = () => subject.app.ctx.database.db;
/** A fresh address for each attacker or user, so tests do not trip each other's IP blocks. */
const freshIp = () => `198.18.${Math.floor(nextIp / 250)}.${(nextIp++ % 250) + 1}`;

async function attempt(ip: string, email: string, password: string) {
  const client = new WebClient(subject.app, { remoteAddress: ip });
  return client.signIn(email, password);
}

function expectFailed(answer: { status: number; body: string }) {
  expect(answer.status).toBe(401);
  expect(answer.body).toContain(SIGN_IN_FAILED_MESSAGE);
}

async function blocksOf(scope: 'ip' | 'user', key: string) {
  return db()
    .selectFrom('blocks')
    .select(['level', 'until', 'created_at', 'lifted_at', 'lifted_by'])
    .where('scope', '=', scope)
    .where('key', '=', key)
    .orderBy('id')
    .execute();
}

describe('per-account regulation', () => {
  it('pauses an account after 3 wrong passwords, even from different addresses; the right password then fails too', async () => {
    const user = await createUser(subject.app);
    for (let i = 0; i < 3; i += 1) expectFailed(await attempt(freshIp(), user.email, `Wrong-Password-${i}`));
    const [block] = await blocksOf('user', user.id);
    expect(block).toMatchObject({ level: 1, lifted_at: null });
    expect(block!.until.getTime() - block!.created_at.getTime()).toBe(60_000);

    const owner = await attempt(freshIp(), user.email, PASSWORD);
    expectFailed(owner);
    const rows = await db()
      .selectFrom('sign_in_attempts')
      .select(['outcome', 'reason'])
      .where('user_id', '=', user.id)
      .orderBy('id')
      .execute();
    expect(rows).toEqual([
      { outcome: 'failure', reason: 'wrong_password' },
      { outcome: 'failure', reason: 'wrong_password' },
      { outcome: 'failure', reason: 'wrong_password' },
      { outcome: 'blocked', reason: 'user_blocked' },
    ]);
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('does the same argon2 work to refuse a paused account as a wrong password, so a pause does not reveal the account', async () => {
    const paused = await createUser(subject.app);
    for (let i = 0; i < 3; i += 1) await attempt(freshIp(), paused.email, 'Wrong-Password-1');
    // The real hasher, counted: a paused account must cost the same argon2 verification as a wrong password.
    const hasher = subject.app.ctx.passwords;
    const realDummy = hasher.verifyDummy.bind(hasher);
    let dummyChecks = 0;
    hasher.verifyDummy = async (password) => {
      dummyChecks += 1;
      await realDummy(password);
    };
    try {
      for (let i = 0; i < 2; i += 1) {
        const client = new WebClient(subject.app, { remoteAddress: freshIp() });
        await client.get('/sign-in');
        expectFailed(await client.post('/sign-in', { email: paused.email, password: 'Wrong-Password-2' }));
      }
    } finally {
      hasher.verifyDummy = realDummy;
    }
    const reasons = await db()
      .selectFrom('sign_in_attempts')
      .select('reason')
      .where('user_id', '=', paused.id)
      .where('outcome', '=', 'blocked')
      .execute();
    expect(reasons).toEqual([{ reason: 'user_blocked' }, { reason: 'user_blocked' }]);
    // Each refusal paid one full argon2 verification, as a wrong password does (the form answers the same).
    expect(dummyChecks).toBe(2);
  });

  it('lets the owner in once the short pause is over', async () => {
    const user = await createUser(subject.app);
    for (let i = 0; i < 3; i += 1) await attempt(freshIp(), user.email, 'Wrong-Password-1');
    subject.clock.advance(61_000);
    const answer = await attempt(freshIp(), user.email, PASSWORD);
    expect(answer.status).toBe(303);
  });

  it('doubles the pause each time it is triggered again, up to 15 minutes', async () => {
    const user = await createUser(subject.app);
    for (let i = 0; i < 3; i += 1) await attempt(freshIp(), user.email, 'Wrong-Password-1');
    const lengths: number[] = [];
    for (let round = 0; round < 6; round += 1) {
      const blocks = await blocksOf('user', user.id);
      const last = blocks.at(-1)!;
      lengths.push((last.until.getTime() - last.created_at.getTime()) / 1000);
      subject.clock.advance(last.until.getTime() - subject.clock.now().getTime() + 1_000);
      // The failures that caused the last pause are still in the window: one more starts the next.
      expectFailed(await attempt(freshIp(), user.email, 'Wrong-Password-2'));
    }
    expect(lengths).toEqual([60, 120, 240, 480, 900, 900]);
  });

  it('starts counting afresh after the owner signs in', async () => {
    const user = await createUser(subject.app);
    await attempt(freshIp(), user.email, 'Wrong-Password-1');
    await attempt(freshIp(), user.email, 'Wrong-Password-1');
    expect((await attempt(freshIp(), user.email, PASSWORD)).status).toBe(303);
    await attempt(freshIp(), user.email, 'Wrong-Password-1');
    await attempt(freshIp(), user.email, 'Wrong-Password-1');
    expect(await blocksOf('user', user.id)).toEqual([]);
    expect((await attempt(freshIp(), user.email, PASSWORD)).status).toBe(303);
  });

  it("does not count a suspended account's right password as a guess", async () => {
    const user = await createUser(subject.app, { status: 'suspended' });
    for (let i = 0; i < 4; i += 1) expectFailed(await attempt(freshIp(), user.email, PASSWORD));
    expect(await blocksOf('user', user.id)).toEqual([]);
  });
});

describe('per-address regulation', () => {
  it('blocks an address after 6 failures across any accounts; a right password from there then fails, from elsewhere it works', async () => {
    const ip = freshIp();
    const user = await createUser(subject.app);
    for (let i = 0; i < 6; i += 1) expectFailed(await attempt(ip, `guess${i}@example.net`, 'Password-123'));
    const [block] = await blocksOf('ip', `${ip}/32`);
    expect(block!.until.getTime() - block!.created_at.getTime()).toBe(15 * 60_000);

    expectFailed(await attempt(ip, user.email, PASSWORD));
    const row = await db()
      .selectFrom('sign_in_attempts')
      .select(['ip', 'outcome', 'reason', 'email_tried'])
      .where('user_id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(row).toEqual({ ip, outcome: 'blocked', reason: 'ip_blocked', email_tried: user.email });
    expect((await attempt(freshIp(), user.email, PASSWORD)).status).toBe(303);

    const unknown = await db()
      .selectFrom('sign_in_attempts')
      .select(['user_id', 'outcome', 'reason'])
      .where('ip', '=', ip)
      .where('reason', '=', 'unknown_email')
      .execute();
    expect(unknown).toHaveLength(6);
    expect(unknown.every((r) => r.user_id === null && r.outcome === 'failure')).toBe(true);
  });

  it('blocks a whole IPv6 /64, so fresh addresses from the same network do not help', async () => {
    const user = await createUser(subject.app);
    for (let i = 0; i < 6; i += 1)
      expectFailed(await attempt(`2001:db8:77:5::${(i + 1).toString(16)}`, `v6guess${i}@example.net`, 'Password-123'));
    expect(await blocksOf('ip', '2001:db8:77:5::/64')).toHaveLength(1);
    expectFailed(await attempt('2001:db8:77:5:abcd::99', user.email, PASSWORD));
    expect((await attempt('2001:db8:77:6::1', user.email, PASSWORD)).status).toBe(303);
  });

  it('treats an IPv4 address written as IPv6 as the IPv4 address', () => {
    expect(addressBlockKey('::ffff:192.0.2.9')).toBe('192.0.2.9/32');
    expect(addressBlockKey('2001:0db8:0000:0042:0000:8a2e:0370:7334')).toBe('2001:db8:0:42::/64');
    expect(addressBlockKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressBlockKey('::1')).toBe('0:0:0:0::/64');
    expect(addressBlockKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
  });

  it('makes exactly one block when many failures arrive at once', async () => {
    const ip = freshIp();
    await Promise.all(Array.from({ length: 20 }, (_, i) => attempt(ip, `flood${i}@example.net`, 'Password-123')));
    expect(await blocksOf('ip', `${ip}/32`)).toHaveLength(1);
  });

  it('escalates the address block: 15 minutes, then 30, then an hour', () => {
    const s = subject.app.ctx.config.auth.regulation;
    expect([1, 2, 3, 7, 20].map((level) => blockDurationMs(s, 'ip', level) / 60_000)).toEqual([15, 30, 60, 960, 1440]);
    expect([1, 2, 3, 4, 5, 9].map((level) => blockDurationMs(s, 'user', level) / 1000)).toEqual([60, 120, 240, 480, 900, 900]);
  });
});

describe('the operator', () => {
  it('keeps only a keyed fingerprint of an address that named no account, and shows the operator that, not the text', async () => {
    const { operator, secret } = await createOperator(subject.app);
    // The classic slip: the password typed into the address field.
    const typed = 'Marmalade-Lighthouse-77';
    const ip = freshIp();
    expectFailed(await attempt(ip, typed, 'whatever'));
    expectFailed(await attempt(ip, `  ${typed.toUpperCase()} `, 'whatever'));
    const rows = await db().selectFrom('sign_in_attempts').select(['email_tried', 'user_id']).where('ip', '=', ip).orderBy('id').execute();
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row.user_id).toBeNull();
      expect(row.email_tried).toMatch(/^hmac:[0-9a-f]{32}$/);
      expect(row.email_tried!.toLowerCase()).not.toContain(typed.toLowerCase());
    }
    // The same text gives the same fingerprint, so the operator still sees one address tried again and again.
    expect(rows[0]!.email_tried).toBe(rows[1]!.email_tried);
    expect(rows[0]!.email_tried).toBe(storedAddress(addressHashKey(subject.app.ctx.config.secrets.passwordPepper), typed, false));

    const desk = new WebClient(subject.app, { remoteAddress: freshIp() });
    expect((await signInOperator(subject.app, desk, operator.email, secret)).location).toBe('/operator');
    const page = await desk.get('/operator');
    expect(page.body).not.toContain(typed);
    expect(page.body).not.toContain(rows[0]!.email_tried);
    expect(page.body).toContain(`unknown address #${rows[0]!.email_tried!.slice(5, 13)}`);
  });

  it('sees the attempts and active blocks and lifts a block; the user can sign in at once', async () => {
    const { operator, secret } = await createOperator(subject.app);
    const user = await createUser(subject.app);
    for (let i = 0; i < 3; i += 1) await attempt(freshIp(), user.email, 'Wrong-Password-9');

    const desk = new WebClient(subject.app, { remoteAddress: freshIp() });
    expect((await signInOperator(subject.app, desk, operator.email, secret)).location).toBe('/operator');
    const page = await desk.get('/operator');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<h2>Active blocks</h2>');
    expect(page.body).toContain(`Account ${user.email}`);
    expect(page.body).toContain('wrong_password');
    const [block] = await db().selectFrom('blocks').select('id').where('scope', '=', 'user').where('key', '=', user.id).execute();
    expect(page.body).toContain(`action="/operator/blocks/${block!.id}/unblock"`);

    const answer = await desk.post(`/operator/blocks/${block!.id}/unblock`, {});
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/operator?unblocked');
    const lifted = await db().selectFrom('blocks').select(['lifted_at', 'lifted_by']).where('id', '=', block!.id).executeTakeFirstOrThrow();
    expect(lifted.lifted_by).toBe(operator.id);
    expect(lifted.lifted_at).not.toBeNull();
    const audit = await db()
      .selectFrom('audit_log')
      .select(['actor', 'action', 'subject'])
      .where('action', '=', 'sign-in.unblocked')
      .execute();
    expect(audit).toContainEqual({ actor: operator.id, action: 'sign-in.unblocked', subject: user.id });
    expect((await desk.get('/operator?unblocked')).body).toContain('The block was lifted.');

    // Lifting it again, or a block that never existed, is not reported as a lift.
    for (const id of [block!.id, 'not-a-block-id']) {
      await desk.get('/operator'); // a stale tab: the form was on the page before the block ended
      const again = await desk.post(`/operator/blocks/${id}/unblock`, {});
      expect(again.location).toBe('/operator?no-block');
    }
    expect((await desk.get('/operator?no-block')).body).toContain('There is no active block with that id any more');
    expect(await db().selectFrom('audit_log').select('id').where('action', '=', 'sign-in.unblocked').execute()).toHaveLength(1);

    // Counting starts afresh: one more wrong password does not re-block at once.
    expectFailed(await attempt(freshIp(), user.email, 'Wrong-Password-9'));
    expect((await attempt(freshIp(), user.email, PASSWORD)).status).toBe(303);
  });

  it('keeps the operator area from customers and visitors', async () => {
    const customer = await createUser(subject.app);
    const client = new WebClient(subject.app, { remoteAddress: freshIp() });
    const visitor = await client.get('/operator');
    expect(visitor.status).toBe(303);
    expect(visitor.location).toBe('/sign-in?next=%2Foperator');
    await client.signIn(customer.email, PASSWORD);
    const page = await client.get('/operator');
    expect(page.status).toBe(404);
    expect(page.body).toContain('There is no page at this address.');
    await client.get('/sign-out');
    const lift = await client.post('/operator/blocks/1/unblock', {});
    expect(lift.status).toBe(404);
  });
});
