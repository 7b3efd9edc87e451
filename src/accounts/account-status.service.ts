// Suspending and resuming an account: the operator's reversible stop, audited, and told to the customer both times.
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { formatUtc } from '../format.js';
import type { MailQueue } from '../mail/mail.service.js';
import { isTwoFactorOn } from '../two-factor/two-factor.service.js';
import { recordAudit } from '../users/audit.js';
import { endRememberLogins, endUserSessions } from '../users/session.service.js';
import { findUserByEmail, type User } from '../users/user.repository.js';
import { UnknownAccount } from './account.service.js';

export class AccountStatusUnchanged extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccountStatusUnchanged';
  }
}

interface StatusChange {
  email: string;
  /** Why, in the operator's words: audited, and quoted to the customer when suspending. */
  reason: string;
  actor: string;
  ip?: string | null;
  now: Date;
  mail: MailQueue;
}

/**
 * Nobody can sign in to a suspended account, and nothing is issued for it (the sign-in, the
 * session hook, the link mailer and the reset form all require an active account); every session
 * and remember-me login ends now. Nothing is deleted: archives, payments and records stay.
 */
export async function suspendAccount(db: Kysely<Database>, change: StatusChange): Promise<User & { endedSessions: number }> {
  return db.transaction().execute(async (trx) => {
    const user = await findUserByEmail(trx, change.email);
    if (user === null) throw new UnknownAccount(change.email.trim());
    if (user.status === 'suspended') throw new AccountStatusUnchanged(`${user.email} is already suspended.`);
    await trx.updateTable('users').set({ status: 'suspended' }).where('id', '=', user.id).execute();
    const endedSessions = (await endUserSessions(trx, user.id)) + (await endRememberLogins(trx, user.id));
    await recordAudit(trx, {
      actor: change.actor,
      action: 'user.suspended',
      subject: user.id,
      ip: change.ip ?? null,
      detail: { reason: change.reason, was: user.status, endedSessions },
      at: change.now,
    });
    await change.mail.enqueue(trx, {
      to: user.email,
      template: 'account-suspended',
      data: { email: user.email, at: formatUtc(change.now), reason: change.reason },
    });
    return { ...user, status: 'suspended' as const, endedSessions };
  });
}

/** Gives a suspended account back what it had: active with a password, invited without one. */
export async function resumeAccount(db: Kysely<Database>, change: StatusChange): Promise<User> {
  return db.transaction().execute(async (trx) => {
    const user = await findUserByEmail(trx, change.email);
    if (user === null) throw new UnknownAccount(change.email.trim());
    if (user.status !== 'suspended') throw new AccountStatusUnchanged(`${user.email} is not suspended (it is ${user.status}).`);
    const status = user.passwordHash === null ? ('invited' as const) : ('active' as const);
    await trx.updateTable('users').set({ status }).where('id', '=', user.id).execute();
    await recordAudit(trx, {
      actor: change.actor,
      action: 'user.resumed',
      subject: user.id,
      ip: change.ip ?? null,
      detail: { reason: change.reason, now: status },
      at: change.now,
    });
    await change.mail.enqueue(trx, {
      to: user.email,
      template: 'account-resumed',
      data: { email: user.email, at: formatUtc(change.now), twoFactor: await isTwoFactorOn(trx, user.id) },
    });
    return { ...user, status };
  });
}
