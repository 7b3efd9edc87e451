// The rules for accounts: inviting, setting a password from a link, asking for a reset, changing the email.
import { sql, type Kysely } from 'kysely';
import { addressBlockKey, normalizeIp } from '../users/regulation.js';
import { endUserSessions } from '../users/session.service.js';
import type { PasswordHasher } from '../users/password-hasher.js';
import { checkPassword } from '../users/password-policy.js';
import type { Database, Db } from '../db/database.js';
import type { MailQueue } from '../mail/mail.service.js';
import { InvalidAccountField, normalizeEmail, type ValidAccount } from './account-fields.js';
import { consumeAccountToken, countRecentTokens, findUsableToken, issueAccountToken, TOKEN_LIFETIME_MS } from './account-token.js';
import { recordAudit } from '../users/audit.js';
import { operatorNeedsEnrolment } from './operator-enrolment.js';
import { findUserByEmail, findUserById, insertUser, takenDomains, type User } from '../users/user.repository.js';

/** At most this many reset emails per account per hour: "forgot password" must not flood an inbox. */
export const MAX_RESETS_PER_HOUR = 3;

export class EmailAlreadyUsed extends Error {
  constructor(readonly email: string) {
    super(`There is already an account with the email address ${email}.`);
    this.name = 'EmailAlreadyUsed';
  }
}

/** Backups are picked by the domain, so one domain belongs to one account. */
export class DomainAlreadyUsed extends Error {
  constructor(readonly domain: string) {
    super(`There is already an account with the domain ${domain}.`);
    this.name = 'DomainAlreadyUsed';
  }
}

export class UnknownAccount extends Error {
  constructor(readonly email: string) {
    super(`There is no account with the email address ${email}.`);
    this.name = 'UnknownAccount';
  }
}

export interface LinkContext {
  /** The portal's public address, for links in emails. */
  publicUrl: string;
  now: Date;
  mail: MailQueue;
}

export function setPasswordLink(publicUrl: string, token: string): string {
  return `${publicUrl}/set-password?token=${token}`;
}

const hours = (ms: number): number => Math.round(ms / 3_600_000);

/** PostgreSQL's unique_violation, raised when two writers race for the same address. */
export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}

/** The unique violation of the domain index (migration 0008), as opposed to the address's. */
export function isDomainViolation(error: unknown): boolean {
  return isUniqueViolation(error) && (error as { constraint?: unknown }).constraint === 'users_domain_normalised';
}

/**
 * Creates the account and queues its invitation in the caller's transaction, so either both
 * happen or neither. The caller has checked the address is free (a race still ends in a unique violation).
 */
export async function inviteUser(trx: Db, account: ValidAccount, context: LinkContext & { actor: string | null }): Promise<User> {
  const user = await insertUser(trx, { ...account, status: 'invited' });
  await queueInvitation(trx, user, context);
  await recordAudit(trx, { actor: context.actor, action: 'user.invited', subject: user.id, detail: { role: user.role }, at: context.now });
  return user;
}

/** A fresh invitation link to the user's current address. */
async function queueInvitation(trx: Db, user: User, context: LinkContext): Promise<void> {
  const token = await issueAccountToken(trx, user.id, 'invitation', context.now);
  await context.mail.enqueue(trx, {
    to: user.email,
    template: 'invitation',
    data: {
      email: user.email,
      domain: user.domain,
      role: user.role,
      link: setPasswordLink(context.publicUrl, token),
      validDays: Math.round(TOKEN_LIFETIME_MS.invitation / 86_400_000),
    },
  });
}

export class InvitationNotNeeded extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvitationNotNeeded';
  }
}

/**
 * "Invite again": a fresh invitation link for an account that has not set itself up (invited, or an
 * operator without two-factor, who can only turn it on through such a link). Earlier open links
 * stop working. Audited.
 */
export async function inviteAgain(
  db: Kysely<Database>,
  email: string,
  context: LinkContext & { actor: string; ip?: string | null; reason?: string },
): Promise<User> {
  return db.transaction().execute(async (trx) => {
    const user = await findUserByEmail(trx, email);
    if (user === null) throw new UnknownAccount(email.trim());
    if (user.status === 'suspended') throw new InvitationNotNeeded(`${user.email} is suspended; resume it first.`);
    if (user.status !== 'invited' && !(await operatorNeedsEnrolment(trx, user))) {
      throw new InvitationNotNeeded(
        user.role === 'operator'
          ? `${user.email} has set up its password and two-factor sign-in already; to move two-factor to a new phone, reset it first.`
          : `${user.email} has set its password already; a forgotten password is reset with "Forgot your password?".`,
      );
    }
    await trx
      .updateTable('account_tokens')
      .set({ used_at: context.now })
      .where('user_id', '=', user.id)
      .where('used_at', 'is', null)
      .execute();
    await queueInvitation(trx, user, context);
    await recordAudit(trx, {
      actor: context.actor,
      action: 'user.reinvited',
      subject: user.id,
      ip: context.ip ?? null,
      detail: { role: user.role, ...(context.reason !== undefined ? { reason: context.reason } : {}) },
      at: context.now,
    });
    return user;
  });
}

/** One account, checked and invited in one transaction. */
export async function addUser(db: Kysely<Database>, account: ValidAccount, context: LinkContext & { actor: string | null }): Promise<User> {
  try {
    return await db.transaction().execute(async (trx) => {
      if ((await findUserByEmail(trx, account.email)) !== null) throw new EmailAlreadyUsed(account.email);
      if (account.domain !== null && (await takenDomains(trx, [account.domain])).size > 0) throw new DomainAlreadyUsed(account.domain);
      return inviteUser(trx, account, context);
    });
  } catch (error) {
    if (isDomainViolation(error)) throw new DomainAlreadyUsed(account.domain ?? '');
    if (isUniqueViolation(error)) throw new EmailAlreadyUsed(account.email);
    throw error;
  }
}

/**
 * "Forgot password": queues a reset link when the address belongs to an account that may sign in,
 * and quietly does nothing otherwise. The caller answers the same either way and does not wait for
 * this, so neither the words nor the time of the answer tell whether the address is known.
 * An invited user who lost the invitation gets a link too: it sets their first password the same way.
 *
 * Both limits are checked and counted in one transaction holding the client address's lock and then
 * the account's row, so parallel requests cannot all see "under the limit": at most
 * MAX_RESETS_PER_HOUR links per account, and at most `maxPerIpPerHour` requests (any address asked
 * for) per client address (IPv6 per /64), so one client cannot mail every customer.
 */
export async function requestPasswordReset(
  db: Kysely<Database>,
  email: string,
  context: LinkContext & { ip: string; maxPerIpPerHour: number },
): Promise<'sent' | 'ignored' | 'address-limited' | 'account-limited'> {
  const hourAgo = new Date(context.now.getTime() - 3_600_000);
  return db.transaction().execute(async (trx) => {
    const range = addressBlockKey(context.ip);
    await sql`select pg_advisory_xact_lock(hashtext(${`archway-reset:ip:${range}`}))`.execute(trx);
    await trx
      .deleteFrom('password_reset_requests')
      .where('at', '<', new Date(context.now.getTime() - 86_400_000))
      .execute();
    const fromAddress = await trx
      .selectFrom('password_reset_requests')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where(sql<boolean>`ip <<= ${range}::inet`)
      .where('at', '>', hourAgo)
      .executeTakeFirstOrThrow();
    if (Number(fromAddress.n) >= context.maxPerIpPerHour) return 'address-limited';
    await trx
      .insertInto('password_reset_requests')
      .values({ at: context.now, ip: normalizeIp(context.ip) })
      .execute();

    const found = await findUserByEmail(trx, email);
    if (found === null || found.status === 'suspended') return 'ignored';
    // The row lock makes the count and the new token one step for this account.
    await trx.selectFrom('users').select('id').where('id', '=', found.id).forUpdate().execute();
    const recent = await countRecentTokens(trx, found.id, 'password_reset', hourAgo);
    if (recent >= MAX_RESETS_PER_HOUR) return 'account-limited';
    const token = await issueAccountToken(trx, found.id, 'password_reset', context.now);
    await context.mail.enqueue(trx, {
      to: found.email,
      template: 'password-reset',
      data: { email: found.email, link: setPasswordLink(context.publicUrl, token), validHours: hours(TOKEN_LIFETIME_MS.password_reset) },
    });
    return 'sent';
  });
}

export type SetPasswordResult =
  | { outcome: 'invalid-link' }
  | { outcome: 'weak-password'; user: User; problems: string[] }
  | { outcome: 'password-set'; user: User; endedSessions: number };

/** Who a live link belongs to, for the form's page; null for a wrong, used or expired link. */
export async function userForLink(
  db: Db,
  token: unknown,
  now: Date,
): Promise<{ user: User; purpose: 'invitation' | 'password_reset'; expiresAt: Date } | null> {
  const usable = await findUsableToken(db, token, now);
  if (usable === null) return null;
  const user = await findUserById(db, usable.userId);
  if (user === null || user.status === 'suspended') return null;
  return { user, purpose: usable.purpose, expiresAt: usable.expiresAt };
}

/**
 * Sets the password a link was sent for. The link works once; every session of the user ends (a
 * thief's included); the user is NOT signed in, whatever 2FA may later add, so a leaked link never
 * becomes a session by itself. A changed password (not a first one) is reported to the user by email.
 */
export async function setPasswordWithToken(
  db: Kysely<Database>,
  passwords: PasswordHasher,
  input: { token: unknown; password: string; now: Date; ip?: string | null; mail: MailQueue },
): Promise<SetPasswordResult> {
  const usable = await findUsableToken(db, input.token, input.now);
  if (usable === null) return { outcome: 'invalid-link' };
  const user = await findUserById(db, usable.userId);
  if (user === null || user.status === 'suspended') return { outcome: 'invalid-link' };
  const problems = checkPassword(input.password, { email: user.email, domain: user.domain });
  if (problems.length > 0) return { outcome: 'weak-password', user, problems };

  // Hash outside the transaction: argon2 takes tens of milliseconds and needs no row lock.
  const hash = await passwords.hash(input.password);
  const firstPassword = user.passwordHash === null;
  return db.transaction().execute(async (trx) => {
    if (!(await consumeAccountToken(trx, usable, input.now))) return { outcome: 'invalid-link' } as const;
    await trx
      .updateTable('users')
      .set({ password_hash: hash, ...(user.status === 'invited' ? { status: 'active' as const } : {}) })
      .where('id', '=', user.id)
      .execute();
    const endedSessions = await endUserSessions(trx, user.id);
    await recordAudit(trx, {
      actor: user.id,
      action: firstPassword ? 'user.password_set' : 'user.password_reset',
      subject: user.id,
      ip: input.ip ?? null,
      detail: { via: usable.purpose, endedSessions },
      at: input.now,
    });
    if (!firstPassword) {
      await input.mail.enqueue(trx, {
        to: user.email,
        template: 'password-changed',
        data: { email: user.email, at: input.now.toISOString() },
      });
    }
    const updated = (await findUserById(trx, user.id)) ?? user;
    return { outcome: 'password-set', user: updated, endedSessions } as const;
  });
}

/**
 * The operator changes a user's email (the customer asks by email; there is no self-service change,
 * as the seed decided). Audited; both the old and the new address are told, the old one so that a
 * change the customer did not ask for is noticed.
 *
 * Whatever was sent to the old address stops working, since whoever reads that mailbox may not be the
 * customer any more: every session and remember-me login ends, open reset and invitation links are
 * spent (an invited user gets a new invitation at the new address), and each ready archive's link
 * email is made due again, so the link mailer arms a fresh token (which retires the old email's link
 * on the backup host) and sends it to the new address.
 */
export async function changeUserEmail(
  db: Kysely<Database>,
  input: {
    currentEmail: string;
    newEmail: string;
    actor: string;
    now: Date;
    ip?: string | null;
    reason?: string;
    publicUrl: string;
    mail: MailQueue;
  },
): Promise<{ user: User; oldEmail: string }> {
  const newEmail = normalizeEmail(input.newEmail);
  try {
    return await db.transaction().execute(async (trx) => {
      const user = await findUserByEmail(trx, input.currentEmail);
      if (user === null) throw new UnknownAccount(input.currentEmail.trim());
      const other = await findUserByEmail(trx, newEmail);
      if (other !== null && other.id !== user.id) throw new EmailAlreadyUsed(newEmail);
      if (user.email === newEmail) throw new InvalidAccountField('email', `The account already has the address ${newEmail}.`);
      await trx.updateTable('users').set({ email: newEmail }).where('id', '=', user.id).execute();
      const changed = { ...user, email: newEmail };
      await endUserSessions(trx, user.id);
      await trx
        .updateTable('account_tokens')
        .set({ used_at: input.now })
        .where('user_id', '=', user.id)
        .where('used_at', 'is', null)
        .execute();
      if (user.status === 'invited') await queueInvitation(trx, changed, input);
      await trx
        .updateTable('archive_requests')
        .set({ notify_due_at: input.now, notify_attempts: 0, last_notify_error: null })
        .where('user_id', '=', user.id)
        .where('state', '=', 'ready')
        .execute();
      await recordAudit(trx, {
        actor: input.actor,
        action: 'user.email_changed',
        subject: user.id,
        ip: input.ip ?? null,
        detail: { from: user.email, to: newEmail, ...(input.reason !== undefined ? { reason: input.reason } : {}) },
        at: input.now,
      });
      const data = { oldEmail: user.email, newEmail, at: input.now.toISOString() };
      await input.mail.enqueue(trx, { to: user.email, template: 'email-changed', data: { ...data, recipient: 'old' } });
      await input.mail.enqueue(trx, { to: newEmail, template: 'email-changed', data: { ...data, recipient: 'new' } });
      return { user: changed, oldEmail: user.email };
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new EmailAlreadyUsed(newEmail);
    throw error;
  }
}

/** The fleet's host names, for the account commands that name one; the one message when a name is not among them. */
export function backupHostProblem(name: string, fleet: readonly string[]): string | null {
  if (fleet.includes(name)) return null;
  if (fleet.length === 0)
    return `the backup host "${name}" cannot be checked: no backup host is configured here (ARCHWAY_BACKUP_HOSTS_FILE).`;
  return `the backup host "${name}" is not one of this portal's backup hosts (${fleet.join(', ')}).`;
}

/**
 * Moves a customer's future archives to another fleet host (audited with the old and the new name).
 * An archive already requested stays on the host it was built on, so its link keeps working.
 */
export async function setBackupHost(
  db: Kysely<Database>,
  input: { email: string; backupHost: string; fleet: readonly string[]; actor: string; now: Date; ip?: string | null },
): Promise<{ user: User; previous: string | null }> {
  const problem = backupHostProblem(input.backupHost, input.fleet);
  if (problem !== null) throw new InvalidAccountField('backup_host', problem.charAt(0).toUpperCase() + problem.slice(1));
  return db.transaction().execute(async (trx) => {
    const user = await findUserByEmail(trx, input.email);
    if (user === null) throw new UnknownAccount(input.email.trim());
    if (user.role !== 'customer')
      throw new InvalidAccountField('backup_host', `${user.email} is an operator; only customers have backups.`);
    if (user.backupHost === input.backupHost)
      throw new InvalidAccountField('backup_host', `${user.email} is already on the backup host ${input.backupHost}.`);
    await trx.updateTable('users').set({ backup_host: input.backupHost }).where('id', '=', user.id).execute();
    await recordAudit(trx, {
      actor: input.actor,
      action: 'user.backup_host_changed',
      subject: user.id,
      ip: input.ip ?? null,
      detail: { from: user.backupHost, to: input.backupHost },
      at: input.now,
    });
    return { user: { ...user, backupHost: input.backupHost }, previous: user.backupHost };
  });
}
