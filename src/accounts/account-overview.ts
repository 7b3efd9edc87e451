// Everything stored about one user, gathered for their account page.
import { liveSession } from '../users/session.store.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { findUserById, type User } from '../users/user.repository.js';

/** How many recent sign-in attempts the page lists; older ones stay until the IP purge. */
export const RECENT_SIGN_INS = 10;

export interface AccountOverview {
  account: Omit<User, 'passwordHash'> & { hasPassword: boolean };
  payments: Array<{ paidAt: Date; amount: string; currency: string; status: string; reference: string }>;
  signIns: Array<{ at: Date; ip: string | null; outcome: string }>;
  sessions: Array<{ createdAt: Date; lastSeenAt: Date; ip: string | null; userAgent: string | null }>;
}

export async function loadAccountOverview(
  db: Kysely<Database>,
  userId: string,
  now: Date,
  idleMinutes: number,
): Promise<AccountOverview | null> {
  const user = await findUserById(db, userId);
  if (user === null) return null;
  const [payments, signIns, sessions] = await Promise.all([
    db
      .selectFrom('payments')
      .select(['paid_at', 'amount', 'currency', 'status', 'reference'])
      .where('user_id', '=', user.id)
      .orderBy('paid_at', 'desc')
      .execute(),
    db
      .selectFrom('sign_in_attempts')
      .select(['at', 'ip', 'outcome'])
      .where('user_id', '=', user.id)
      .orderBy('at', 'desc')
      .limit(RECENT_SIGN_INS)
      .execute(),
    db
      .selectFrom('sessions')
      .select(['created_at', 'last_seen_at', 'ip', 'user_agent'])
      .where('user_id', '=', user.id)
      .where(liveSession(now, idleMinutes))
      .orderBy('last_seen_at', 'desc')
      .execute(),
  ]);
  const { passwordHash, ...visible } = user;
  return {
    account: { ...visible, hasPassword: passwordHash !== null },
    payments: payments.map((p) => ({
      paidAt: p.paid_at,
      amount: p.amount,
      currency: p.currency,
      status: p.status,
      reference: p.reference,
    })),
    signIns: signIns.map((s) => ({ at: s.at, ip: s.ip, outcome: s.outcome })),
    sessions: sessions.map((s) => ({ createdAt: s.created_at, lastSeenAt: s.last_seen_at, ip: s.ip, userAgent: s.user_agent })),
  };
}
