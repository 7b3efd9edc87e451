// The password half of signing in: one argon2 verification whatever the address, and a re-hash when due.
import type { Db } from '../db/database.js';
import type { PasswordHasher } from './password-hasher.js';
import { findUserByEmail, type User } from './user.repository.js';

export interface PasswordCheck {
  /** The account the address names, or null; present even when the password is wrong. */
  user: User | null;
  /** True only when the user exists, has a password and it matches. */
  ok: boolean;
}

/**
 * Checks an email and password the way the sign-in form needs it: an unknown address or an account
 * without a password still costs one argon2 verification (against a dummy), so response time does not
 * reveal which addresses have accounts. On success with outdated argon2 parameters the stored hash is
 * replaced, since this is the only moment the plain password is at hand. Status (suspended, invited)
 * and regulation are the caller's decisions.
 */
export async function verifyPasswordForSignIn(db: Db, passwords: PasswordHasher, email: string, password: string): Promise<PasswordCheck> {
  const user = await findUserByEmail(db, email);
  if (user === null || user.passwordHash === null) {
    await passwords.verifyDummy(password);
    return { user, ok: false };
  }
  const { ok, needsRehash } = await passwords.verify(user.passwordHash, password);
  if (ok && needsRehash) {
    const fresh = await passwords.hash(password);
    // Only replace the hash that was verified: a password change meanwhile wins.
    await db
      .updateTable('users')
      .set({ password_hash: fresh })
      .where('id', '=', user.id)
      .where('password_hash', '=', user.passwordHash)
      .execute();
    return { user: { ...user, passwordHash: fresh }, ok };
  }
  return { user, ok };
}
