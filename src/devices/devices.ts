// The devices list: a user's live sessions and remember-me logins, and ending any of them.
import { liveSession } from '../users/session.store.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { describeUserAgent } from './user-agent.js';

export interface Device {
  /** "s:<session key>" or "r:<remember-me login id>": what the end button sends back. */
  ref: string;
  createdAt: Date;
  lastUsedAt: Date;
  ip: string | null;
  browser: string;
  /** This browser, the one looking at the page. */
  current: boolean;
  /** Whether a live session exists (false: remembered, but the browser has not come back yet). */
  active: boolean;
  /** Until when "remember me" keeps it signed in; null when it is not remembered. */
  rememberedUntil: Date | null;
}

export async function listDevices(
  db: Kysely<Database>,
  userId: string,
  now: Date,
  options: { idleMinutes: number; currentSessionKey: string | null },
): Promise<Device[]> {
  const [sessions, remembered] = await Promise.all([
    db
      .selectFrom('sessions')
      .select(['id', 'created_at', 'last_seen_at', 'ip', 'user_agent'])
      .where('user_id', '=', userId)
      .where(liveSession(now, options.idleMinutes))
      .execute(),
    db
      .selectFrom('remember_logins')
      .select(['id', 'created_at', 'last_used_at', 'expires_at', 'session_id', 'ip', 'user_agent'])
      .where('user_id', '=', userId)
      .where('replaced_at', 'is', null)
      .where('expires_at', '>', now)
      .execute(),
  ]);
  const bySession = new Map(remembered.filter((r) => r.session_id !== null).map((r) => [r.session_id, r]));
  const liveSessionIds = new Set(sessions.map((s) => s.id));
  const devices: Device[] = sessions.map((s) => {
    const remember = bySession.get(s.id);
    return {
      ref: `s:${s.id}`,
      createdAt: remember?.created_at ?? s.created_at,
      lastUsedAt: s.last_seen_at,
      ip: s.ip,
      browser: describeUserAgent(s.user_agent),
      current: s.id === options.currentSessionKey,
      active: true,
      rememberedUntil: remember?.expires_at ?? null,
    };
  });
  for (const r of remembered) {
    if (r.session_id !== null && liveSessionIds.has(r.session_id)) continue;
    devices.push({
      ref: `r:${r.id}`,
      createdAt: r.created_at,
      lastUsedAt: r.last_used_at,
      ip: r.ip,
      browser: describeUserAgent(r.user_agent),
      current: false,
      active: false,
      rememberedUntil: r.expires_at,
    });
  }
  return devices.sort((a, b) => Number(b.current) - Number(a.current) || b.lastUsedAt.getTime() - a.lastUsedAt.getTime());
}

/**
 * Ends one device of the user: its session row and the remember-me login tied to it, so neither
 * cookie works from the next request on. Returns false when the reference is not one of theirs.
 */
export async function endDevice(db: Kysely<Database>, userId: string, ref: string): Promise<boolean> {
  const session = /^s:([0-9a-f]{64})$/.exec(ref)?.[1];
  const remember = /^r:(\d{1,18})$/.exec(ref)?.[1];
  if (session === undefined && remember === undefined) return false;
  return db.transaction().execute(async (trx) => {
    if (session !== undefined) {
      const ended = await trx.deleteFrom('sessions').where('id', '=', session).where('user_id', '=', userId).executeTakeFirst();
      const endedLogins = await trx
        .deleteFrom('remember_logins')
        .where('session_id', '=', session)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return Number(ended.numDeletedRows) + Number(endedLogins.numDeletedRows) > 0;
    }
    const row = await trx
      .deleteFrom('remember_logins')
      .where('id', '=', remember!)
      .where('user_id', '=', userId)
      .returning('session_id')
      .executeTakeFirst();
    if (row === undefined) return false;
    if (row.session_id !== null) await trx.deleteFrom('sessions').where('id', '=', row.session_id).where('user_id', '=', userId).execute();
    return true;
  });
}
