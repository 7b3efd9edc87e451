// An operator gets in only through a one-time link that sets the password and turns two-factor on together.
import type { Db } from '../db/database.js';
import { formatUtc } from '../format.js';
import { confirmPendingSecret, isTwoFactorOn, type TwoFactorContext } from '../two-factor/two-factor.service.js';
import { recordAudit } from '../users/audit.js';
import { checkPassword } from '../users/password-policy.js';
import { endRememberLogins, endUserSessions } from '../users/session.service.js';
import { findUserById, type User } from '../users/user.repository.js';
import { consumeAccountToken, findUsableToken } from './account-token.js';

/**
 * True for an operator account whose two-factor sign-in is not on: its password alone must open
 * nothing, so it can only be set up through a link (`archway users invite`), never by signing in.
 */
export async function operatorNeedsEnrolment(db: Db, user: Pick<User, 'id' | 'role'>): Promise<boolean> {
  return user.role === 'operator' && !(await isTwoFactorOn(db, user.id));
}

/** Another request used the link between the check and the commit (two tabs, a replay). */
class LinkSpent extends Error {}

export type OperatorSetUp =
  | { outcome: 'invalid-link' }
  | { outcome: 'rejected'; user: User; errors: { password?: string[]; code?: string } }
  | { outcome: 'set-up'; user: User; recoveryCodes: string[] };

/**
 * Sets the password and turns on the pending two-factor secret (the link page showed it) in one
 * transaction, and only then spends the link: a wrong code or a weak password changes nothing and
 * leaves the link usable. Every session of the account ends; the operator is not signed in.
 */
export async function setUpOperatorWithToken(
  twoFactor: TwoFactorContext,
  input: { token: unknown; password: string; code: string; ip: string | null },
): Promise<OperatorSetUp> {
  const { db } = twoFactor;
  const now = twoFactor.clock.now();
  const usable = await findUsableToken(db, input.token, now);
  const user = usable === null ? null : await findUserById(db, usable.userId);
  if (usable === null || user === null || user.status === 'suspended' || !(await operatorNeedsEnrolment(db, user))) {
    return { outcome: 'invalid-link' };
  }
  const problems = checkPassword(input.password, { email: user.email, domain: user.domain });
  if (problems.length > 0) return { outcome: 'rejected', user, errors: { password: problems } };
  // Hash outside the transaction: argon2 takes tens of milliseconds and needs no row lock.
  const hash = await twoFactor.passwords.hash(input.password);

  try {
    return await db.transaction().execute(async (trx) => {
      const confirmed = await confirmPendingSecret(trx, twoFactor, user.id, input.code, now);
      if (!confirmed.ok) return { outcome: 'rejected' as const, user, errors: { code: confirmed.error } };
      // Thrown, not returned: the secret just turned on must roll back with it.
      if (!(await consumeAccountToken(trx, usable!, now))) throw new LinkSpent();
      await trx.updateTable('users').set({ password_hash: hash, status: 'active' }).where('id', '=', user.id).execute();
      const endedSessions = (await endUserSessions(trx, user.id)) + (await endRememberLogins(trx, user.id));
      await recordAudit(trx, {
        actor: user.id,
        action: 'user.operator_enrolled',
        subject: user.id,
        ip: input.ip,
        detail: { via: usable!.purpose, endedSessions },
        at: now,
      });
      await twoFactor.mail.enqueue(trx, {
        to: user.email,
        template: 'two-factor-enabled',
        data: { email: user.email, at: formatUtc(now) },
      });
      return { outcome: 'set-up' as const, user: { ...user, status: 'active' as const }, recoveryCodes: confirmed.recoveryCodes };
    });
  } catch (error) {
    if (error instanceof LinkSpent) return { outcome: 'invalid-link' };
    throw error;
  }
}
