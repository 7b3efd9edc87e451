import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyRing, keyIdOf } from '../../src/two-factor/key-ring.js';
import { TEST_SECRETS } from '../harness/app.js';
import { runCli } from '../harness/cli.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { createUser } from '../harness/users.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

const OLD_KEY = 'aa'.repeat(32);
const NEW_KEY = 'bb'.repeat(32);
const key = (hex: string) => Buffer.from(hex, 'hex');

function env(extra: Record<string, string>): Record<string, string> {
  return {
    ARCHWAY_DATABASE_URL: database.url,
    ARCHWAY_SMTP_URL: 'smtp://127.0.0.1:9',
    ARCHWAY_SESSION_SECRET: TEST_SECRETS.ARCHWAY_SESSION_SECRET,
    ARCHWAY_PASSWORD_PEPPER: TEST_SECRETS.ARCHWAY_PASSWORD_PEPPER,
    ARCHWAY_REQUIRE_HTTPS: 'false',
    ...extra,
  };
}

async function storeSecret(email: string, hexKey: string, secret: Buffer): Promise<string> {
  const user = await createUser({ database: database.handle }, { email, password: null });
  await database.handle.db
    .insertInto('two_factor')
    .values({
      user_id: user.id,
      secret_encrypted: createKeyRing(key(hexKey)).encrypt(secret, user.id),
      created_at: new Date(),
      enabled_at: new Date(),
      last_used_step: null,
    })
    .execute();
  return user.id;
}

async function storedFor(userId: string): Promise<string> {
  const row = await database.handle.db
    .selectFrom('two_factor')
    .select('secret_encrypted')
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow();
  return row.secret_encrypted;
}

describe('archway keys', () => {
  it('re-encrypts secrets under an older key with the new one, and refuses to pretend when the old key is missing', async () => {
    const secretA = Buffer.alloc(20, 1);
    const secretB = Buffer.alloc(20, 2);
    const a = await storeSecret('a@example.net', OLD_KEY, secretA);
    const b = await storeSecret('b@example.net', NEW_KEY, secretB);
    const before = await storedFor(a);

    const withoutOld = await runCli(['keys', 'rotate'], { env: env({ ARCHWAY_ENCRYPTION_KEY: NEW_KEY }) });
    expect(withoutOld.code).toBe(65);
    expect(withoutOld.stderr).toBe(
      `archway keys: 1 secret(s) under key ${keyIdOf(key(OLD_KEY))} could not be read: add that key to ARCHWAY_ENCRYPTION_KEYS_OLD and run this again.\n`,
    );
    expect(await storedFor(a)).toBe(before);

    const status = await runCli(['keys', 'status'], {
      env: env({ ARCHWAY_ENCRYPTION_KEY: NEW_KEY, ARCHWAY_ENCRYPTION_KEYS_OLD: OLD_KEY }),
    });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(
      `current key ${keyIdOf(key(NEW_KEY))}: 1 secret(s)\nolder key   ${keyIdOf(key(OLD_KEY))}: 1 secret(s)\n`,
    );
    expect(status.stdout).not.toContain(OLD_KEY);

    const rotated = await runCli(['keys', 'rotate'], {
      env: env({ ARCHWAY_ENCRYPTION_KEY: NEW_KEY, ARCHWAY_ENCRYPTION_KEYS_OLD: OLD_KEY }),
    });
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toBe(`Re-encrypted 1 secret(s) under key ${keyIdOf(key(NEW_KEY))}; 1 already were.\n`);
    const audit = await database.handle.db
      .selectFrom('audit_log')
      .select(['actor', 'detail'])
      .where('action', '=', 'keys.rotated')
      .execute();
    expect(audit).toEqual([{ actor: 'cli', detail: { key: keyIdOf(key(NEW_KEY)), reEncrypted: 1, alreadyCurrent: 1 } }]);
    const ring = createKeyRing(key(NEW_KEY));
    expect(ring.keyIdIn(await storedFor(a))).toBe(keyIdOf(key(NEW_KEY)));
    expect(ring.decrypt(await storedFor(a), a)).toEqual(secretA);
    expect(ring.decrypt(await storedFor(b), b)).toEqual(secretB);

    // Once rotated, the old key is no longer needed.
    const again = await runCli(['keys', 'rotate'], { env: env({ ARCHWAY_ENCRYPTION_KEY: NEW_KEY }) });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`Re-encrypted 0 secret(s) under key ${keyIdOf(key(NEW_KEY))}; 2 already were.\n`);
  });

  it('names a malformed old key without printing it, and refuses an unknown action', async () => {
    const bad = await runCli(['keys', 'status'], {
      env: env({ ARCHWAY_ENCRYPTION_KEY: NEW_KEY, ARCHWAY_ENCRYPTION_KEYS_OLD: `${OLD_KEY},not-a-key-at-all` }),
    });
    expect(bad.code).toBe(78);
    expect(bad.stderr).toContain('ARCHWAY_ENCRYPTION_KEYS_OLD entry 2 is not 32 bytes as 64 hex or 44 base64 characters.');
    expect(bad.stderr).not.toContain('not-a-key-at-all');
    const unknown = await runCli(['keys', 'shred'], { env: env({ ARCHWAY_ENCRYPTION_KEY: NEW_KEY }) });
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toContain('Unknown action "shred" for "archway keys": use status or rotate.');
  });
});
