// Starting and ending signed-in sessions: a fresh id at every sign-in, and ending all of a user's sessions.
import type { FastifyRequest } from 'fastify';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { SignedInUser } from './guards.js';
import { sessionKey } from './session.store.js';

declare module 'fastify' {
  interface Session {
    /** The signed-in user's id; absent for a visitor. */
    userId?: string | null;
    /** Address and browser at sign-in, shown on the account page and purged with the other IPs. */
    ip?: string | null;
    userAgent?: string | null;
  }
}

/**
 * Signs `user` in on this request. The session gets a new random id even when the browser already
 * had one, so an id planted before sign-in (session fixation) is worth nothing afterwards; the old
 * row is destroyed.
 */
export async function startUserSession(request: FastifyRequest, user: Pick<SignedInUser, 'id'>): Promise<void> {
  request.session.userId = user.id;
  request.session.ip = request.ip;
  request.session.userAgent = (request.headers['user-agent'] ?? '').slice(0, 512) || null;
  await request.session.regenerate(['userId', 'ip', 'userAgent']);
}

/** Ends every session of the user, half-finished sign-ins included (password reset, 2FA change), except the one named, if any. */
export async function endUserSessions(db: Db, userId: string, options: { exceptSessionId?: string } = {}): Promise<number> {
  // A half-finished sign-in (right password, code not yet given) is a session of the user too: a
  // password reset that left it alive would let the old password finish signing in.
  let query = db
    .deleteFrom('sessions')
    .where((eb) =>
      eb.or([
        eb('user_id', '=', userId),
        eb.and([eb('user_id', 'is', null), sql<boolean>`data->'twoFactorPending'->>'userId' = ${userId}`]),
      ]),
    );
  if (options.exceptSessionId !== undefined) query = query.where('id', '<>', sessionKey(options.exceptSessionId));
  const result = await query.executeTakeFirst();
  // Remember-me logins go with them (or the cookie would sign the browser back in); only the one
  // tied to the kept session stays.
  let remembered = db.deleteFrom('remember_logins').where('user_id', '=', userId);
  if (options.exceptSessionId !== undefined) {
    const kept = sessionKey(options.exceptSessionId);
    remembered = remembered.where((eb) => eb.or([eb('session_id', 'is', null), eb('session_id', '<>', kept)]));
  }
  await remembered.execute();
  return Number(result.numDeletedRows);
}

/** Signs out this browser: the row goes at once, so the old cookie finds nothing even if replayed. */
export async function endThisSession(request: FastifyRequest): Promise<void> {
  if (request.session?.sessionId !== undefined) await request.session.destroy();
  request.user = null;
}

/** Ends every remember-me login of a user ("sign out everywhere", 2FA off, password reset), except one series if named. */
export async function endRememberLogins(db: Db, userId: string, options: { exceptSeries?: string } = {}): Promise<number> {
  let query = db.deleteFrom('remember_logins').where('user_id', '=', userId);
  if (options.exceptSeries !== undefined) {
    // The kept login's own predecessors go too; only the live row itself stays.
    query = query.where('series', '<>', options.exceptSeries);
  }
  const result = await query.executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Deletes this browser's session row and nothing else; the request keeps its (now empty) session object. */
export async function endThisSessionRow(db: Db, sessionId: string): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', sessionKey(sessionId)).execute();
}
