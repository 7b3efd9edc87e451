// Remember-me logins: a series and a token in a cookie, the token stored only hashed, both rotated at every use.
import { recordAudit } from '../users/audit.js';
import { addToRequestLog } from '../users/request-log.js';
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Database, Db } from '../db/database.js';
import type { MailQueue } from '../mail/mail.service.js';
import { endUserSessions } from '../users/session.service.js';

/** The seed's 5 days, counted from the sign-in that ticked "remember me"; rotation never extends it. */
export const REMEMBER_DAYS = 5;
/**
 * How long a just-rotated cookie still yields the login that replaced it: long enough for a page
 * and its assets or two tabs sent together, short enough that a copied cookie is caught soon after.
 */
export const ROTATION_GRACE_SECONDS = 10;

const PART = /^[A-Za-z0-9_-]{43}$/;

export function rememberCookieName(secure: boolean): string {
  return secure ? '__Host-archway-remember' : 'archway-remember';
}

/**
 * The key that derives a rotated cookie's token from the one it replaces, so a request that
 * arrives with the previous cookie during the grace window can be given the same new cookie
 * without the new token ever being stored. Derived from the session secret, not in the database.
 */
export function rotationKey(sessionSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(sessionSecret, 'utf8'), Buffer.alloc(0), 'archway remember-me rotation v1', 32));
}

function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function successorToken(key: Buffer, series: string, token: string): string {
  return createHmac('sha256', key).update(`${series}.${token}`).digest('base64url');
}

function parseCookie(value: string | undefined): { series: string; token: string } | null {
  if (value === undefined) return null;
  const [series, token, extra] = value.split('.');
  if (extra !== undefined || series === undefined || token === undefined || !PART.test(series) || !PART.test(token)) return null;
  return { series, token };
}

export interface RememberCookie {
  value: string;
  expiresAt: Date;
  series: string;
}

export interface DeviceMeta {
  ip: string | null;
  userAgent: string | null;
}

/** A new remember-me login for a user who has just signed in fully (password and, if on, second step). */
export async function createRememberLogin(
  db: Db,
  input: { userId: string; now: Date; sessionId: string | null } & DeviceMeta,
): Promise<RememberCookie> {
  const series = randomBytes(32).toString('base64url');
  const token = randomBytes(32).toString('base64url');
  const expiresAt = new Date(input.now.getTime() + REMEMBER_DAYS * 86_400_000);
  await db
    .insertInto('remember_logins')
    .values({
      user_id: input.userId,
      series,
      token_hash: tokenHash(token),
      created_at: input.now,
      last_used_at: input.now,
      expires_at: expiresAt,
      session_id: input.sessionId,
      ip: input.ip,
      user_agent: input.userAgent,
    })
    .execute();
  return { value: `${series}.${token}`, expiresAt, series };
}

export type RememberOutcome =
  | { kind: 'signed-in'; userId: string; cookie: RememberCookie; concurrent: boolean }
  | { kind: 'unknown' }
  | { kind: 'expired'; userId: string }
  | { kind: 'theft'; userId: string; reason: 'wrong-token' | 'rotated-cookie-reused'; email: string | null };

/**
 * Uses a remember-me cookie (the browser has no live session). A matching, live series is
 * rotated: the row is marked replaced and a new series and token are issued, so each cookie works
 * once. The previous cookie, sent again within the grace window, yields the same new cookie.
 * A known series with a wrong token, or a replaced cookie after the grace window, means two
 * browsers hold it: every remember-me login and session of the user ends and the user is emailed.
 */
export async function useRememberCookie(
  db: Kysely<Database>,
  input: { cookie: string | undefined; now: Date; rotationKey: Buffer; mail: MailQueue } & DeviceMeta,
): Promise<RememberOutcome> {
  const parsed = parseCookie(input.cookie);
  if (parsed === null) return { kind: 'unknown' };
  const { now } = input;

  return db.transaction().execute(async (trx) => {
    // FOR UPDATE: two requests with the same cookie are served one after the other, so the second
    // sees the rotation the first made and takes the grace path instead of rotating again.
    const row = await trx.selectFrom('remember_logins').selectAll().where('series', '=', parsed.series).forUpdate().executeTakeFirst();
    if (row === undefined) return { kind: 'unknown' as const };

    const presented = tokenHash(parsed.token);
    if (!timingSafeEqual(presented, row.token_hash)) return raiseTheft(trx, input.mail, row.user_id, 'wrong-token', now, input.ip);
    if (row.expires_at <= now) {
      await trx.deleteFrom('remember_logins').where('user_id', '=', row.user_id).where('expires_at', '<=', now).execute();
      return { kind: 'expired' as const, userId: row.user_id };
    }

    if (row.replaced_at === null) {
      const series = randomBytes(32).toString('base64url');
      const token = successorToken(input.rotationKey, parsed.series, parsed.token);
      await trx
        .insertInto('remember_logins')
        .values({
          user_id: row.user_id,
          series,
          token_hash: tokenHash(token),
          created_at: row.created_at,
          last_used_at: now,
          expires_at: row.expires_at,
          session_id: null,
          ip: input.ip,
          user_agent: input.userAgent,
        })
        .execute();
      // The used row stays (marked) until it expires, only so that its reuse can be recognised.
      await trx
        .updateTable('remember_logins')
        .set({ replaced_at: now, replaced_by: series, session_id: null })
        .where('id', '=', row.id)
        .execute();
      await addToRequestLog(trx, { at: now, userId: row.user_id, ip: input.ip, kind: 'sign-in', event: 'remember-me', outcome: 'success' });
      return {
        kind: 'signed-in' as const,
        userId: row.user_id,
        cookie: { value: `${series}.${token}`, expiresAt: row.expires_at, series },
        concurrent: false,
      };
    }

    if (now.getTime() - row.replaced_at.getTime() > ROTATION_GRACE_SECONDS * 1000) {
      return raiseTheft(trx, input.mail, row.user_id, 'rotated-cookie-reused', now, input.ip);
    }
    // Within the grace window: walk to the newest login of this chain (the other request may
    // already have rotated it again) and hand out that one.
    let series = parsed.series;
    let token = parsed.token;
    let current = row;
    for (let hop = 0; hop < 8 && current.replaced_by !== null; hop += 1) {
      token = successorToken(input.rotationKey, series, token);
      series = current.replaced_by;
      const next = await trx.selectFrom('remember_logins').selectAll().where('series', '=', series).forUpdate().executeTakeFirst();
      // Ended meanwhile (signed out, ended on the devices page): nothing to hand out.
      if (next === undefined || !timingSafeEqual(tokenHash(token), next.token_hash)) return { kind: 'unknown' as const };
      current = next;
    }
    if (current.replaced_at !== null) return { kind: 'unknown' as const };
    return {
      kind: 'signed-in' as const,
      userId: row.user_id,
      cookie: { value: `${series}.${token}`, expiresAt: current.expires_at, series },
      concurrent: true,
    };
  });
}

async function raiseTheft(
  trx: Transaction<Database>,
  mail: MailQueue,
  userId: string,
  reason: 'wrong-token' | 'rotated-cookie-reused',
  now: Date,
  ip: string | null,
): Promise<RememberOutcome> {
  await trx.deleteFrom('remember_logins').where('user_id', '=', userId).execute();
  await endUserSessions(trx, userId);
  await recordAudit(trx, { actor: 'system', action: 'remember-me.theft_suspected', subject: userId, ip, detail: { reason }, at: now });
  const user = await trx.selectFrom('users').select('email').where('id', '=', userId).executeTakeFirst();
  if (user !== undefined) {
    await mail.enqueue(trx, { to: user.email, template: 'remember-me-theft', data: { email: user.email, at: formatTime(now) } });
  }
  return { kind: 'theft', userId, reason, email: user?.email ?? null };
}

/** Records which session a remember-me login started, so ending one ends the other. */
export async function attachSession(db: Db, series: string, sessionKey: string): Promise<void> {
  await db.updateTable('remember_logins').set({ session_id: sessionKey }).where('series', '=', series).execute();
}

/** Ends the remember-me login a cookie names (sign-out on that device); returns whether there was one. */
export async function endRememberLoginByCookie(db: Db, cookie: string | undefined): Promise<boolean> {
  const parsed = parseCookie(cookie);
  if (parsed === null) return false;
  const row = await db
    .selectFrom('remember_logins')
    .select(['user_id', 'token_hash'])
    .where('series', '=', parsed.series)
    .executeTakeFirst();
  // A cookie with a wrong token ends nothing: only the device that holds the login may end it this way.
  if (row === undefined || !timingSafeEqual(tokenHash(parsed.token), row.token_hash)) return false;
  const result = await db.deleteFrom('remember_logins').where('series', '=', parsed.series).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Removes logins past their 5 days (and so their IP addresses); run by the hourly retention job (ip-retention.ts). */
export async function deleteExpiredRememberLogins(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('remember_logins').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Clears the IP address of logins last used before `cutoff` (the IP retention period). */
export async function forgetRememberLoginIps(db: Db, cutoff: Date): Promise<number> {
  const result = await db
    .updateTable('remember_logins')
    .set({ ip: null })
    .where('last_used_at', '<', cutoff)
    .where('ip', 'is not', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

function formatTime(date: Date): string {
  return date.toISOString().slice(0, 16).replace('T', ' ');
}
