import argon2 from 'argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPasswordForSignIn } from '../../src/users/sign-in-password.js';
import { findUserById } from '../../src/users/user.repository.js';
import { createPasswordHasher } from '../../src/users/password-hasher.js';
import { Semaphore } from '../../src/users/semaphore.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { testConfig } from '../harness/app.js';
import { createUser } from '../harness/users.js';

const config = testConfig('postgres://unused/x');
const hasher = createPasswordHasher(config);
const password = 'Tangerine-Harbour-42';

describe('password hashing', () => {
  it('stores argon2id with the configured parameters, never the password', async () => {
    const stored = await hasher.hash(password);
    const { memoryKiB, timeCost, parallelism } = config.auth.argon2;
    expect(stored).toMatch(
      new RegExp(`^\\$argon2id\\$v=19\\$m=${memoryKiB},t=${timeCost},p=${parallelism}\\$[A-Za-z0-9+/]+\\$[A-Za-z0-9+/]+$`),
    );
    expect(stored).not.toContain(password);
    expect(await hasher.hash(password)).not.toBe(stored);
  });

  it('verifies the right password and refuses a wrong one', async () => {
    const stored = await hasher.hash(password);
    expect(await hasher.verify(stored, password)).toEqual({ ok: true, needsRehash: false });
    expect(await hasher.verify(stored, 'Tangerine-Harbour-43')).toEqual({ ok: false, needsRehash: false });
    expect(await hasher.verify(stored, '')).toEqual({ ok: false, needsRehash: false });
  });

  it('mixes in the pepper: a hash of the bare password, or made with another pepper, does not verify', async () => {
    const otherPepper = createPasswordHasher({
      ...config,
      secrets: { ...config.secrets, passwordPepper: 'another-pepper-0123456789abcdef-0123456789' },
    });
    const stored = await otherPepper.hash(password);
    expect((await otherPepper.verify(stored, password)).ok).toBe(true);
    expect(await hasher.verify(stored, password)).toEqual({ ok: false, needsRehash: false });
    const bare = await argon2.hash(password, { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
    expect(await hasher.verify(bare, password)).toEqual({ ok: false, needsRehash: false });
  });

  it('verifies NFKC-equivalent spellings of the same password', async () => {
    const composed = 'Café-Résumé-2024'; // é as one code point
    const decomposed = 'Cafe\u0301-Re\u0301sume\u0301-2024'; // e + combining accent
    expect(composed).not.toBe(decomposed);
    const stored = await hasher.hash(composed);
    expect((await hasher.verify(stored, decomposed)).ok).toBe(true);
    const fullWidth = await hasher.hash('Ｔａｎｇｅｒｉｎｅ１２３');
    expect((await hasher.verify(fullWidth, 'Tangerine123')).ok).toBe(true);
  });

  it('hashes and verifies a 128-character Unicode password', async () => {
    const start = 'Aa1-Ünïcødé-Пароль-密码-🔐-';
    const long = start + 'ж'.repeat(128 - [...start].length);
    expect([...long].length).toBe(128);
    const stored = await hasher.hash(long);
    expect((await hasher.verify(stored, long)).ok).toBe(true);
    expect((await hasher.verify(stored, long.slice(0, -1))).ok).toBe(false);
  });

  it('says a hash made with weaker parameters needs re-hashing, but only when the password matched', async () => {
    const weaker = createPasswordHasher(testConfig('postgres://unused/x'));
    const stronger = createPasswordHasher(testConfig('postgres://unused/x', { ARCHWAY_ARGON2_TIME_COST: '3' }));
    const stored = await weaker.hash(password);
    expect(await stronger.verify(stored, password)).toEqual({ ok: true, needsRehash: true });
    expect(await stronger.verify(stored, 'wrong-Password-1')).toEqual({ ok: false, needsRehash: false });
  });

  it('treats a stored value that is not an argon2 hash as matching nothing', async () => {
    expect(await hasher.verify('plaintext', password)).toEqual({ ok: false, needsRehash: false });
    expect(await hasher.verify('', password)).toEqual({ ok: false, needsRehash: false });
  });

  it('spends about as long on the dummy of an unknown user as on a real verification', async () => {
    const stored = await hasher.hash(password);
    await hasher.verifyDummy(password); // the dummy hash is made once, on first use
    const once = async (run: () => Promise<unknown>) => {
      const start = process.hrtime.bigint();
      await run();
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    const real: number[] = [];
    const dummy: number[] = [];
    // Interleaved, so load from other test files slows both alike; medians ignore the odd stall.
    for (let i = 0; i < 7; i++) {
      real.push(await once(() => hasher.verify(stored, 'wrong-Password-1')));
      dummy.push(await once(() => hasher.verifyDummy('wrong-Password-1')));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[3]!;
    expect(median(dummy) / median(real)).toBeGreaterThan(0.5);
    expect(median(dummy) / median(real)).toBeLessThan(2);
  });
});

describe('the semaphore that bounds hashing', () => {
  it('lets at most its limit of tasks run at once and runs the rest in arrival order', async () => {
    const slots = new Semaphore(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const task = (n: number) =>
      slots.run(async () => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        order.push(n);
        running -= 1;
        return n;
      });
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map(task));
    expect(results).toEqual([1, 2, 3, 4, 5, 6]);
    expect(most).toBe(2);
    expect(order.slice(2)).toEqual([3, 4, 5, 6]);
    expect(slots.queued).toBe(0);
  });

  it('frees the slot when a task fails', async () => {
    const slots = new Semaphore(1);
    await expect(slots.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await slots.run(async () => 'next')).toBe('next');
  });

  it('refuses a limit below one', () => {
    expect(() => new Semaphore(0)).toThrow(RangeError);
  });
});

describe('checking a password at sign-in', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => database.drop());

  it('re-hashes with the current parameters after a successful sign-in, and leaves a failed one alone', async () => {
    const db = database.handle.db;
    const weaker = createPasswordHasher(testConfig(database.url));
    const stronger = createPasswordHasher(testConfig(database.url, { ARCHWAY_ARGON2_TIME_COST: '3' }));
    const user = await createUser({ database: database.handle, passwords: weaker }, { email: 'rehash@example.net', password });

    const wrong = await verifyPasswordForSignIn(db, stronger, 'REHASH@example.net', 'Wrong-Password-1');
    expect(wrong.ok).toBe(false);
    expect(wrong.user?.id).toBe(user.id);
    expect((await findUserById(db, user.id))?.passwordHash).toBe(user.passwordHash);

    const right = await verifyPasswordForSignIn(db, stronger, 'Rehash@Example.net', password);
    expect(right.ok).toBe(true);
    const after = (await findUserById(db, user.id))?.passwordHash ?? '';
    expect(after).toMatch(/^\$argon2id\$v=19\$m=19456,t=3,p=1\$/);
    expect(after).not.toBe(user.passwordHash);
    expect(await stronger.verify(after, password)).toEqual({ ok: true, needsRehash: false });
    expect(right.user?.passwordHash).toBe(after);
  });

  it('after a pepper change, signs in with a password hashed under the old pepper once and re-hashes it under the new one', async () => {
    const db = database.handle.db;
    const oldPepper = 'the-pepper-before-the-change-0123456789abcdef';
    const newPepper = 'the-pepper-after-the-change-0123456789abcdefgh';
    const before = createPasswordHasher(testConfig(database.url, { ARCHWAY_PASSWORD_PEPPER: oldPepper }));
    const after = createPasswordHasher(
      testConfig(database.url, { ARCHWAY_PASSWORD_PEPPER: newPepper, ARCHWAY_PASSWORD_PEPPERS_OLD: oldPepper }),
    );
    const withoutOld = createPasswordHasher(testConfig(database.url, { ARCHWAY_PASSWORD_PEPPER: newPepper }));
    const user = await createUser({ database: database.handle, passwords: before }, { email: 'pepper@example.net', password });

    expect(await withoutOld.verify(user.passwordHash!, password)).toEqual({ ok: false, needsRehash: false });
    expect(await after.verify(user.passwordHash!, 'Wrong-Password-1')).toEqual({ ok: false, needsRehash: false });

    const right = await verifyPasswordForSignIn(db, after, 'pepper@example.net', password);
    expect(right.ok).toBe(true);
    const rehashed = (await findUserById(db, user.id))?.passwordHash ?? '';
    expect(rehashed).not.toBe(user.passwordHash);
    // Now it verifies under the new pepper alone, so the old one can be dropped from the settings.
    expect(await withoutOld.verify(rehashed, password)).toEqual({ ok: true, needsRehash: false });
  });

  it('answers an unknown address and an account without a password with ok false', async () => {
    const db = database.handle.db;
    expect(await verifyPasswordForSignIn(db, hasher, 'nobody@example.net', password)).toEqual({ user: null, ok: false });
    const invited = await createUser({ database: database.handle }, { email: 'invited@example.net', status: 'invited', password: null });
    expect(await verifyPasswordForSignIn(db, hasher, 'invited@example.net', password)).toEqual({ user: invited, ok: false });
  });
});
