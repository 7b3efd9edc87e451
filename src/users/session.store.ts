// The PostgreSQL store behind @fastify/session: one row per signed-in browser, expiry enforced here.
import { createHash } from 'node:crypto';
import type { Session } from 'fastify';
import type { ExpressionBuilder, Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Database } from '../db/database.js';

/** Session values that live in their own columns rather than in `data`. */
interface SessionColumns {
  userId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
}

type SessionLike = SessionColumns & Record<string, unknown>;
type Callback = (error?: unknown) => void;

/** Marks a session object that already has its row, so a later save only ever updates. */
const PERSISTED = 'persisted';
/** Keys @fastify/session puts on the object that are not ours to store. */
const NOT_DATA = new Set(['cookie', 'sessionId', 'encryptedSessionId', PERSISTED, 'userId', 'ip', 'userAgent']);

export interface SessionLifetimes {
  idleMinutes: number;
  absoluteHours: number;
}

/**
 * The one definition of a live session: before its absolute expiry and seen within the idle
 * limit. Every query that lists, counts or purges sessions uses it, and the store checks a loaded row by it.
 */
export function liveSession(now: Date, idleMinutes: number) {
  const idleCutoff = new Date(now.getTime() - idleMinutes * 60_000);
  return (eb: ExpressionBuilder<Database, 'sessions'>) => eb.and([eb('expires_at', '>', now), eb('last_seen_at', '>', idleCutoff)]);
}

/** The key a session id is stored under: its SHA-256, so the table holds nothing a cookie could replay. */
export function sessionKey(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('hex');
}

export class PostgresSessionStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
    private readonly lifetimes: SessionLifetimes,
  ) {}

  /** The session, or nothing when it never existed, was destroyed, or expired (the row goes then). */
  get(sessionId: string, callback: (error: unknown, session?: Session | null) => void): void {
    this.load(sessionId).then(
      (session) => callback(null, session as unknown as Session | null),
      (error: unknown) => callback(error),
    );
  }

  set(sessionId: string, session: Session, callback: Callback): void {
    this.save(sessionId, session as unknown as SessionLike).then(
      () => callback(),
      (error: unknown) => callback(error),
    );
  }

  destroy(sessionId: string, callback: Callback): void {
    this.db
      .deleteFrom('sessions')
      .where('id', '=', sessionKey(sessionId))
      .execute()
      .then(
        () => callback(),
        (error: unknown) => callback(error),
      );
  }

  private async load(sessionId: string): Promise<SessionLike | null> {
    const key = sessionKey(sessionId);
    const row = await this.db
      .selectFrom('sessions')
      .selectAll()
      .where('id', '=', key)
      .where(liveSession(this.clock.now(), this.lifetimes.idleMinutes))
      .executeTakeFirst();
    // Both limits are checked here, against the server's clock: the cookie itself carries no expiry
    // a client could stretch, and an old cookie replayed later finds nothing.
    if (row === undefined) {
      await this.db.deleteFrom('sessions').where('id', '=', key).execute();
      return null;
    }
    return { ...row.data, userId: row.user_id, ip: row.ip, userAgent: row.user_agent, [PERSISTED]: true };
  }

  private async save(sessionId: string, session: SessionLike): Promise<void> {
    const data: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(session)) if (!NOT_DATA.has(key)) data[key] = value;
    const now = this.clock.now();
    const id = sessionKey(sessionId);

    if (session[PERSISTED] === true) {
      // Update only: a request that was in flight while the user signed out (or a password reset
      // ended every session) must not bring the deleted row back.
      await this.db
        .updateTable('sessions')
        .set({ data: JSON.stringify(data), last_seen_at: now })
        .where('id', '=', id)
        .execute();
      return;
    }
    await this.db
      .insertInto('sessions')
      .values({
        id,
        user_id: session.userId ?? null,
        data: JSON.stringify(data),
        created_at: now,
        last_seen_at: now,
        expires_at: new Date(now.getTime() + this.lifetimes.absoluteHours * 3_600_000),
        ip: session.ip ?? null,
        user_agent: session.userAgent ?? null,
      })
      .onConflict((oc) => oc.column('id').doUpdateSet({ data: JSON.stringify(data), last_seen_at: now }))
      .execute();
    // The same object may be saved again in this request (regenerate, then the reply): update from now on.
    Object.defineProperty(session, PERSISTED, { value: true, enumerable: false, configurable: true, writable: true });
  }
}
