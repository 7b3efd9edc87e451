// The store @fastify/rate-limit counts in: one row per route and user in PostgreSQL, shared by every portal instance.
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

type Result = { current: number; ttl: number };

export interface RateLimitHitsTable {
  key: string;
  window_started_at: Date;
  hits: number;
}

/**
 * A fixed window per key, like the plugin's in-memory store, but counted by one upsert: two
 * instances (or two requests at once) cannot both see the count before the other's hit. Windows use
 * the portal's clock (Date.now), which NTP keeps within a fraction of a second across instances.
 */
export function databaseRateLimitStore(db: Kysely<Database>): FastifyRateLimitStoreCtor {
  class DatabaseRateLimitStore implements FastifyRateLimitStore {
    constructor(private readonly route = '') {}

    incr(key: string, callback: (error: Error | null, result?: Result) => void, timeWindow: number): void {
      countHit(db, `${this.route}|${key}`, timeWindow, Date.now()).then(
        (result) => callback(null, result),
        (error: Error) => callback(error),
      );
    }

    child(routeOptions: { method?: string | string[]; url?: string; routeInfo?: { method?: string | string[]; url?: string } }) {
      const info = routeOptions.routeInfo ?? routeOptions;
      return new DatabaseRateLimitStore(`${[info.method ?? ''].flat().join(',')} ${info.url ?? ''}`);
    }
  }
  return DatabaseRateLimitStore as unknown as FastifyRateLimitStoreCtor;
}

async function countHit(db: Kysely<Database>, key: string, windowMs: number, nowMs: number): Promise<Result> {
  const now = new Date(nowMs);
  const windowStart = new Date(nowMs - windowMs);
  const { rows } = await sql<{ hits: number; window_started_at: Date }>`
    insert into rate_limit_hits as r (key, window_started_at, hits) values (${key}, ${now}, 1)
    on conflict (key) do update set
      hits = case when r.window_started_at <= ${windowStart} then 1 else r.hits + 1 end,
      window_started_at = case when r.window_started_at <= ${windowStart} then ${now} else r.window_started_at end
    returning hits, window_started_at`.execute(db);
  const row = rows[0]!;
  // A concurrent hit may have opened the window a moment after this one's clock reading: never over a window.
  return { current: row.hits, ttl: Math.min(windowMs, Math.max(0, row.window_started_at.getTime() + windowMs - nowMs)) };
}

/** Windows over for an hour are of no use; their keys may hold an address. */
export async function deleteOldRateLimitWindows(db: Kysely<Database>, now: Date): Promise<number> {
  const result = await db
    .deleteFrom('rate_limit_hits')
    .where('window_started_at', '<', new Date(now.getTime() - 3_600_000))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
