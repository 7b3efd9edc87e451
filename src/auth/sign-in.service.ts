// Signing in with email and password: regulation first, one argon2 verification on every path, one generic outcome.
import type { AppContext } from '../context.js';
import { findUserByEmail, type User } from '../users/user.repository.js';
import { verifyPasswordForSignIn } from '../users/sign-in-password.js';
import type { SignInOutcome } from '../users/users.tables.js';
import { admitAttempt, settleAttempt } from '../users/regulation.js';
import { isTwoFactorOn } from '../two-factor/two-factor.service.js';

/**
 * The one message for every failed sign-in: unknown address, wrong password, blocked IP or account,
 * suspended or not yet activated account. The detail goes to the attempt row and the log, never
 * to the page, so the form cannot be used to learn which addresses have accounts or are blocked.
 */
export const SIGN_IN_FAILED_MESSAGE =
  'That email address and password did not work. Check them and try again in a minute, or reset your password.';

export type SignInResult = { ok: true; user: User } | { ok: false; reason: string };

export async function signIn(ctx: AppContext, input: { email: string; password: string; ip: string }): Promise<SignInResult> {
  const { db, regulator, passwords } = ctx;
  const emailTried = input.email.trim();

  const known = await findUserByEmail(db, emailTried);
  // Admitted or not in one locked step, before any argon2 work: a burst cannot slip past the limit.
  const admission = await admitAttempt(regulator, { emailTried, userId: known?.id ?? null, ip: input.ip });
  if (!admission.admitted) {
    // The password is not checked while blocked (a guess learns nothing), but the same argon2 work is
    // done, for two reasons: an account's pause must not show in the timing (it would tell that the
    // account exists), and the work waits its turn in the hasher's bounded queue, which is what keeps a
    // flood slow. Answering blocked attempts at once let a 200-client flood from one blocked address
    // reach 200 requests/s of database work and made the account page's p99 100x worse (bench/signin-flood.mjs).
    await passwords.verifyDummy(input.password);
    ctx.metrics.recordSignIn('blocked');
    return { ok: false, reason: admission.reason };
  }
  const settle = (outcome: SignInOutcome, reason: string, userId: string | null, secondStepDue = false) => {
    ctx.metrics.recordSignIn(outcome);
    return settleAttempt(regulator, admission.attemptId, { emailTried, userId, ip: input.ip, outcome, reason, secondStepDue });
  };

  // Verifies against a dummy hash when the account does not exist or has no password yet; re-hashes on success when due.
  const check = await verifyPasswordForSignIn(db, passwords, emailTried, input.password);
  const user = check.user;
  if (!check.ok) {
    const reason = user === null ? 'unknown_email' : user.passwordHash === null ? 'no_password' : 'wrong_password';
    const blocks = await settle('failure', reason, user?.id ?? null);
    for (const b of blocks) ctx.log.warn({ scope: b.scope, level: b.level, until: b.until }, 'sign-in block started');
    return { ok: false, reason };
  }
  if (user === null || user.status !== 'active') {
    // The right password for an account that may not sign in: not a guess, so it does not count towards a block.
    const reason = `account_${user?.status ?? 'missing'}`;
    await settle('refused', reason, user?.id ?? null);
    return { ok: false, reason };
  }
  // The request log tells a finished sign-in from a right password still waiting for its code.
  await settle('success', 'password', user.id, await isTwoFactorOn(db, user.id));
  return { ok: true, user };
}
