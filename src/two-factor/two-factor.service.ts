// The rules of two-factor sign-in: enrolment, the second step, recovery codes, disabling, and the operator's reset.
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely, Transaction } from 'kysely';
import { recordAudit } from '../users/audit.js';
import { addToRequestLog } from '../users/request-log.js';
import { findUserById, type User } from '../users/user.repository.js';
import type { PasswordHasher } from '../users/password-hasher.js';
import { admitAttempt, forgetAttempt, settleAttempt, type Regulator } from '../users/regulation.js';
import { endRememberLogins, endUserSessions } from '../users/session.service.js';
import type { Clock } from '../clock.js';
import type { Database, Db } from '../db/database.js';
import type { MailQueue } from '../mail/mail.service.js';
import type { KeyRing } from './key-ring.js';
import { generateRecoveryCodes, hashRecoveryCode, normalizeRecoveryCode, RECOVERY_CODE_COUNT } from './recovery-codes.js';
import { generateSecret, matchingStep, normalizeTotpInput, otpauthUri, qrCodeSvg } from './totp.js';
import { admitTwoFactorAttempt, blockTwoFactorIfDue, clearUserFailures } from './two-factor.regulation.js';

/** A pending secret not confirmed within this time is replaced by a fresh one at the next visit. */
const PENDING_LIFETIME_MS = 60 * 60_000;

export interface TwoFactorContext {
  db: Kysely<Database>;
  log: FastifyBaseLogger;
  regulator: Regulator;
  clock: Clock;
  keys: KeyRing;
  recoveryKey: Buffer;
  issuer: string;
  passwords: PasswordHasher;
  mail: MailQueue;
}

/** An operator without two-factor reaches nothing, so an operator cannot turn it off; another operator resets it. */
export class OperatorKeepsTwoFactor extends Error {
  constructor() {
    super('Operators keep two-factor sign-in on.');
    this.name = 'OperatorKeepsTwoFactor';
  }
}

export class TwoFactorAlreadyOn extends Error {
  constructor() {
    super('Two-factor sign-in is already on for this account.');
    this.name = 'TwoFactorAlreadyOn';
  }
}

export interface TwoFactorStatus {
  enabled: boolean;
  enabledAt: Date | null;
  recoveryCodesLeft: number;
}

export type FormOutcome<T> = ({ ok: true } & T) | { ok: false; errors: { password?: string; code?: string } };

export async function twoFactorStatus(db: Db, userId: string): Promise<TwoFactorStatus> {
  const row = await db.selectFrom('two_factor').select('enabled_at').where('user_id', '=', userId).executeTakeFirst();
  const enabledAt = row?.enabled_at ?? null;
  if (enabledAt === null) return { enabled: false, enabledAt: null, recoveryCodesLeft: 0 };
  const codes = await db
    .selectFrom('two_factor_recovery_codes')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .executeTakeFirstOrThrow();
  return { enabled: true, enabledAt, recoveryCodesLeft: Number(codes.n) };
}

export async function isTwoFactorOn(db: Db, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom('two_factor')
    .select('enabled_at')
    .where('user_id', '=', userId)
    .where('enabled_at', 'is not', null)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * The secret being enrolled: the pending one if it is recent (a reload shows the same QR code the
 * phone may already have scanned), else a fresh one. Never for an account that has 2FA on: its
 * secret is not shown again.
 */
export async function enrolmentSecret(
  ctx: TwoFactorContext,
  user: Pick<User, 'id' | 'email'>,
): Promise<{ secret: Buffer; uri: string; svg: string }> {
  const now = ctx.clock.now();
  const row = await ctx.db.selectFrom('two_factor').selectAll().where('user_id', '=', user.id).executeTakeFirst();
  if (row?.enabled_at) throw new TwoFactorAlreadyOn();
  let secret: Buffer;
  if (row !== undefined && now.getTime() - row.created_at.getTime() < PENDING_LIFETIME_MS) {
    secret = ctx.keys.decrypt(row.secret_encrypted, user.id);
  } else {
    secret = generateSecret();
    const secretEncrypted = ctx.keys.encrypt(secret, user.id);
    await ctx.db
      .insertInto('two_factor')
      .values({ user_id: user.id, secret_encrypted: secretEncrypted, created_at: now, enabled_at: null, last_used_step: null })
      .onConflict((oc) =>
        oc
          .column('user_id')
          .doUpdateSet({ secret_encrypted: secretEncrypted, created_at: now, last_used_step: null })
          .where('two_factor.enabled_at', 'is', null),
      )
      .execute();
  }
  const uri = otpauthUri(ctx.issuer, user.email, secret);
  return { secret, uri, svg: await qrCodeSvg(uri) };
}

/**
 * Checks the account password on a form that changes two-factor settings. Wrong passwords count
 * in the sign-in regulation like any other, so a hijacked session cannot guess the password here.
 */
async function checkPassword(ctx: TwoFactorContext, user: User, password: string, ip: string): Promise<boolean> {
  const regulator = ctx.regulator;
  const attempt = { emailTried: user.email, userId: user.id, ip };
  const admission = user.passwordHash === null ? null : await admitAttempt(regulator, attempt);
  if (admission === null || !admission.admitted || user.passwordHash === null) {
    await ctx.passwords.verifyDummy(password);
    return false;
  }
  const { ok } = await ctx.passwords.verify(user.passwordHash, password);
  // A right password here is not a sign-in: its row goes, as before this check recorded only failures.
  if (ok) await forgetAttempt(regulator, admission.attemptId);
  else
    await settleAttempt(regulator, admission.attemptId, { ...attempt, outcome: 'failure', reason: 'wrong_password_two_factor_settings' });
  return ok;
}

async function storeNewRecoveryCodes(
  trx: Transaction<Database>,
  ctx: Pick<TwoFactorContext, 'recoveryKey'>,
  userId: string,
  now: Date,
): Promise<string[]> {
  const codes = generateRecoveryCodes();
  await trx.deleteFrom('two_factor_recovery_codes').where('user_id', '=', userId).execute();
  await trx
    .insertInto('two_factor_recovery_codes')
    .values(codes.map((code) => ({ user_id: userId, code_hash: hashRecoveryCode(ctx.recoveryKey, code), created_at: now, used_at: null })))
    .execute();
  return codes;
}

export interface ThisBrowser {
  ip: string;
  /** The session to keep when other sessions end. */
  sessionId?: string;
  /** The remember-me series to keep when other remember-me logins end. */
  rememberSeries?: string;
}

/**
 * Turns two-factor on: the password and a current code of the pending secret are both needed.
 * Nothing changes on a wrong one. Other browsers are signed out (2FA changes end other sessions)
 * and the user is emailed. Returns the ten recovery codes, to be shown once.
 */
export async function enableTwoFactor(
  ctx: TwoFactorContext,
  userId: string,
  input: { password: string; code: string },
  browser: ThisBrowser,
): Promise<FormOutcome<{ recoveryCodes: string[] }>> {
  const user = await findUserById(ctx.db, userId);
  if (user === null) return { ok: false, errors: { password: 'Your account could not be found.' } };
  const now = ctx.clock.now();
  const errors: { password?: string; code?: string } = {};
  if (normalizeTotpInput(input.code) === null) errors.code = 'Enter the 6-digit code your app shows now.';
  if (input.password === '') errors.password = 'Enter your password.';
  else if (!(await checkPassword(ctx, user, input.password, browser.ip))) errors.password = 'That is not your password.';
  if (errors.code !== undefined || errors.password !== undefined) return { ok: false, errors };

  return ctx.db.transaction().execute(async (trx) => {
    const confirmed = await confirmPendingSecret(trx, ctx, user.id, input.code, now);
    if (!confirmed.ok) return { ok: false as const, errors: { code: confirmed.error } };
    await endOtherLogins(trx, user.id, browser);
    await ctx.mail.enqueue(trx, { to: user.email, template: 'two-factor-enabled', data: { email: user.email, at: formatUtc(now) } });
    await recordAudit(trx, { actor: user.id, action: 'two-factor.enabled', subject: user.id, ip: browser.ip, at: now });
    return { ok: true as const, recoveryCodes: confirmed.recoveryCodes };
  });
}

/**
 * Turns the pending secret on if `code` is its current code, in the caller's transaction, and makes
 * the ten recovery codes; changes nothing otherwise. Throws TwoFactorAlreadyOn.
 */
export async function confirmPendingSecret(
  trx: Transaction<Database>,
  ctx: Pick<TwoFactorContext, 'keys' | 'recoveryKey'>,
  userId: string,
  code: string,
  now: Date,
): Promise<{ ok: true; recoveryCodes: string[] } | { ok: false; error: string }> {
  if (normalizeTotpInput(code) === null) return { ok: false, error: 'Enter the 6-digit code your app shows now.' };
  const row = await trx.selectFrom('two_factor').selectAll().where('user_id', '=', userId).forUpdate().executeTakeFirst();
  if (row === undefined) return { ok: false, error: 'Enrolment has expired; scan the new code below.' };
  if (row.enabled_at !== null) throw new TwoFactorAlreadyOn();
  const step = matchingStep(ctx.keys.decrypt(row.secret_encrypted, userId), code, now);
  if (step === null) return { ok: false, error: 'That code is not right. Check the time on your phone and enter the code it shows now.' };
  await trx
    .updateTable('two_factor')
    .set({ enabled_at: now, last_used_step: String(step) })
    .where('user_id', '=', userId)
    .execute();
  return { ok: true, recoveryCodes: await storeNewRecoveryCodes(trx, ctx, userId, now) };
}

async function endOtherLogins(trx: Db, userId: string, browser: ThisBrowser): Promise<void> {
  await endUserSessions(trx, userId, browser.sessionId !== undefined ? { exceptSessionId: browser.sessionId } : {});
  await endRememberLogins(trx, userId, browser.rememberSeries !== undefined ? { exceptSeries: browser.rememberSeries } : {});
}

export type SecondFactorResult =
  | { ok: true; method: 'totp' }
  | { ok: true; method: 'recovery'; recoveryCodesLeft: number }
  | { ok: false; reason: 'blocked' | 'wrong' | 'replayed' | 'malformed' | 'not-enrolled' };

/**
 * Checks a TOTP code or a recovery code for the account, under the two-factor regulation. A TOTP
 * code is accepted once: its time step must be newer than the last one accepted (the row is locked,
 * so two requests with the same code cannot both pass). A recovery code is spent by the same
 * update that finds it.
 */
export async function verifySecondFactor(ctx: TwoFactorContext, userId: string, input: string, ip: string): Promise<SecondFactorResult> {
  const now = ctx.clock.now();
  const enrolled = await isTwoFactorOn(ctx.db, userId);
  if (!enrolled) return { ok: false, reason: 'not-enrolled' };
  const logStep = (db: Db, outcome: 'success' | 'failure' | 'blocked', detail: Record<string, unknown>) =>
    addToRequestLog(db, { at: now, userId, ip, kind: 'two-factor', event: 'second-step', outcome, detail });
  if ((await admitTwoFactorAttempt(ctx.db, now, userId, ip)) === null) {
    await logStep(ctx.db, 'blocked', {});
    return { ok: false, reason: 'blocked' };
  }
  const totp = normalizeTotpInput(input);
  const recovery = totp === null ? normalizeRecoveryCode(input) : null;

  const result = await ctx.db.transaction().execute(async (trx): Promise<SecondFactorResult> => {
    const row = await trx
      .selectFrom('two_factor')
      .selectAll()
      .where('user_id', '=', userId)
      .where('enabled_at', 'is not', null)
      .forUpdate()
      .executeTakeFirst();
    if (row === undefined) return { ok: false, reason: 'not-enrolled' };
    if (totp !== null) {
      const step = matchingStep(ctx.keys.decrypt(row.secret_encrypted, userId), totp, now);
      if (step === null) return { ok: false, reason: 'wrong' };
      if (row.last_used_step !== null && step <= Number(row.last_used_step)) return { ok: false, reason: 'replayed' };
      await trx
        .updateTable('two_factor')
        .set({ last_used_step: String(step) })
        .where('user_id', '=', userId)
        .execute();
      return { ok: true, method: 'totp' };
    }
    if (recovery !== null) {
      const spent = await trx
        .updateTable('two_factor_recovery_codes')
        .set({ used_at: now })
        .where('user_id', '=', userId)
        .where('code_hash', '=', hashRecoveryCode(ctx.recoveryKey, recovery))
        .where('used_at', 'is', null)
        .returning('id')
        .executeTakeFirst();
      if (spent === undefined) return { ok: false, reason: 'wrong' };
      const left = await trx
        .selectFrom('two_factor_recovery_codes')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('user_id', '=', userId)
        .where('used_at', 'is', null)
        .executeTakeFirstOrThrow();
      const user = await findUserById(trx, userId);
      if (user !== null) {
        await ctx.mail.enqueue(trx, {
          to: user.email,
          template: 'recovery-code-used',
          data: { email: user.email, at: formatUtc(now), left: Number(left.n), total: RECOVERY_CODE_COUNT },
        });
      }
      await recordAudit(trx, {
        actor: userId,
        action: 'two-factor.recovery_code_used',
        subject: userId,
        ip,
        detail: { left: Number(left.n) },
        at: now,
      });
      return { ok: true, method: 'recovery', recoveryCodesLeft: Number(left.n) };
    }
    return { ok: false, reason: 'malformed' };
  });

  if (result.ok) {
    await clearUserFailures(ctx.db, userId);
    await logStep(ctx.db, 'success', { method: result.method });
    return result;
  }
  // The admission's row stays as the wrong code's.
  await ctx.db.transaction().execute(async (trx) => {
    await logStep(trx, 'failure', { reason: result.reason });
    const blocks = await blockTwoFactorIfDue(trx, now, userId, ip);
    const userBlock = blocks.find((b) => b.scope === 'user');
    if (userBlock !== undefined) {
      const user = await findUserById(trx, userId);
      if (user !== null) {
        await ctx.mail.enqueue(trx, {
          to: user.email,
          template: 'two-factor-blocked',
          data: { email: user.email, at: formatUtc(now), until: formatUtc(userBlock.until) },
        });
      }
    }
    for (const b of blocks) ctx.log.warn({ scope: b.scope, until: b.until, userId }, 'two-factor step blocked after wrong codes');
  });
  return result;
}

/** New recovery codes (password needed): the old set stops working at once; the user is emailed. */
export async function regenerateRecoveryCodes(
  ctx: TwoFactorContext,
  userId: string,
  input: { password: string },
  browser: ThisBrowser,
): Promise<FormOutcome<{ recoveryCodes: string[] }>> {
  const user = await findUserById(ctx.db, userId);
  if (user === null) return { ok: false, errors: { password: 'Your account could not be found.' } };
  if (input.password === '') return { ok: false, errors: { password: 'Enter your password.' } };
  if (!(await checkPassword(ctx, user, input.password, browser.ip)))
    return { ok: false, errors: { password: 'That is not your password.' } };
  if (!(await isTwoFactorOn(ctx.db, user.id))) return { ok: false, errors: { password: 'Two-factor sign-in is not on for this account.' } };
  const now = ctx.clock.now();
  return ctx.db.transaction().execute(async (trx) => {
    const recoveryCodes = await storeNewRecoveryCodes(trx, ctx, user.id, now);
    await ctx.mail.enqueue(trx, { to: user.email, template: 'recovery-codes-new', data: { email: user.email, at: formatUtc(now) } });
    await recordAudit(trx, { actor: user.id, action: 'two-factor.recovery_codes_renewed', subject: user.id, ip: browser.ip, at: now });
    return { ok: true as const, recoveryCodes };
  });
}

/**
 * Turns two-factor off: the password and a current code (or a recovery code) are needed. Every
 * other session and every remember-me login ends, and the user is emailed.
 */
export async function disableTwoFactor(
  ctx: TwoFactorContext,
  userId: string,
  input: { password: string; code: string },
  browser: ThisBrowser,
): Promise<FormOutcome<Record<never, never>>> {
  const user = await findUserById(ctx.db, userId);
  if (user === null) return { ok: false, errors: { password: 'Your account could not be found.' } };
  if (user.role === 'operator') throw new OperatorKeepsTwoFactor();
  const errors: { password?: string; code?: string } = {};
  if (input.password === '') errors.password = 'Enter your password.';
  else if (!(await checkPassword(ctx, user, input.password, browser.ip))) errors.password = 'That is not your password.';
  if (input.code.trim() === '') errors.code = 'Enter the code your app shows now, or a recovery code.';
  if (errors.password !== undefined || errors.code !== undefined) return { ok: false, errors };
  const check = await verifySecondFactor(ctx, user.id, input.code, browser.ip);
  if (!check.ok) {
    return {
      ok: false,
      errors: {
        code:
          check.reason === 'blocked'
            ? BLOCKED_MESSAGE
            : 'That code did not work. Enter the code your app shows now, or an unused recovery code.',
      },
    };
  }
  const now = ctx.clock.now();
  await ctx.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('two_factor').where('user_id', '=', user.id).execute();
    await trx.deleteFrom('two_factor_recovery_codes').where('user_id', '=', user.id).execute();
    await endUserSessions(trx, user.id, browser.sessionId !== undefined ? { exceptSessionId: browser.sessionId } : {});
    await endRememberLogins(trx, user.id);
    await ctx.mail.enqueue(trx, { to: user.email, template: 'two-factor-disabled', data: { email: user.email, at: formatUtc(now) } });
    await recordAudit(trx, { actor: user.id, action: 'two-factor.disabled', subject: user.id, ip: browser.ip, at: now });
  });
  return { ok: true };
}

/**
 * The operator's reset for a customer who lost their phone and codes: two-factor goes off, every
 * session and remember-me login of the account ends, the audit log records who did it, and the
 * customer is emailed (so a reset they did not ask for does not go unnoticed).
 */
export async function resetTwoFactorByOperator(
  ctx: TwoFactorContext,
  operatorId: string,
  targetId: string,
  ip: string,
  reason?: string,
): Promise<boolean> {
  const now = ctx.clock.now();
  return ctx.db.transaction().execute(async (trx) => {
    const user = await findUserById(trx, targetId);
    if (user === null) return false;
    const removed = await trx
      .deleteFrom('two_factor')
      .where('user_id', '=', user.id)
      .where('enabled_at', 'is not', null)
      .executeTakeFirst();
    if (Number(removed.numDeletedRows) === 0) return false;
    await trx.deleteFrom('two_factor_recovery_codes').where('user_id', '=', user.id).execute();
    await endUserSessions(trx, user.id);
    await endRememberLogins(trx, user.id);
    await recordAudit(trx, {
      actor: operatorId,
      action: 'two-factor.reset',
      subject: user.id,
      ip,
      detail: { email: user.email, ...(reason !== undefined ? { reason } : {}) },
      at: now,
    });
    await ctx.mail.enqueue(trx, {
      to: user.email,
      template: 'two-factor-reset',
      data: { email: user.email, at: formatUtc(now), operator: user.role === 'operator' },
    });
    return true;
  });
}

export const BLOCKED_MESSAGE = 'Too many wrong codes. This step is paused for a while; we have emailed you. Try again later.';

function formatUtc(date: Date): string {
  return date.toISOString().slice(0, 16).replace('T', ' ');
}
