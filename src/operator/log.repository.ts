// Reads of the request log: one filtered page by keyset, the whole filtered log in batches for export.
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { LogKind, LogOutcome } from '../users/users.tables.js';
import type { LogFilter } from './log-filter.js';

export const LOG_PAGE_SIZE = 50;

export interface LogRow {
  id: string;
  at: Date;
  /** The time as PostgreSQL holds it, to the microsecond: the keyset cursor. */
  atText: string;
  userId: string | null;
  email: string | null;
  ip: string | null;
  kind: LogKind;
  event: string;
  outcome: LogOutcome;
  detail: Record<string, unknown>;
}

/** The filter with its customer resolved to an account id. */
export type ResolvedFilter = Omit<LogFilter, 'customer'> & { userId: string | null };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The account an email address (any case) or an account id names, or null. */
export async function findCustomer(db: Kysely<Database>, text: string): Promise<{ id: string; email: string } | null> {
  const query = db.selectFrom('users').select(['id', 'email']);
  const row = UUID.test(text)
    ? await query.where('id', '=', text.toLowerCase()).executeTakeFirst()
    : await query.where(sql<string>`lower(email)`, '=', text.toLowerCase()).executeTakeFirst();
  return row ?? null;
}

function filtered(db: Kysely<Database>, filter: ResolvedFilter) {
  let query = db.selectFrom('request_log').leftJoin('users', 'users.id', 'request_log.user_id');
  if (filter.userId !== null) query = query.where('request_log.user_id', '=', filter.userId);
  // `<<=` on a btree index becomes a range scan: one address, or every address in the range.
  if (filter.ip !== '') query = query.where(sql<boolean>`request_log.ip <<= ${filter.ip}::inet`);
  if (filter.kind !== '') query = query.where('request_log.kind', '=', filter.kind);
  if (filter.outcome !== '') query = query.where('request_log.outcome', '=', filter.outcome);
  if (filter.from !== null) query = query.where('request_log.at', '>=', filter.from);
  if (filter.until !== null) query = query.where('request_log.at', '<', filter.until);
  return query;
}

async function readRows(
  db: Kysely<Database>,
  filter: ResolvedFilter,
  after: { at: string; id: string } | null,
  limit: number,
): Promise<LogRow[]> {
  let query = filtered(db, filter);
  // Keyset: strictly older than the last row shown, with the id breaking ties between equal times.
  if (after !== null) query = query.where(sql<boolean>`(request_log.at, request_log.id) < (${after.at}::timestamptz, ${after.id}::bigint)`);
  const rows = await query
    .select([
      'request_log.id',
      sql<string>`request_log.at::text`.as('at_text'),
      'request_log.at',
      'request_log.user_id',
      'users.email',
      sql<string | null>`host(request_log.ip)`.as('ip'),
      'request_log.kind',
      'request_log.event',
      'request_log.outcome',
      'request_log.detail',
    ])
    .orderBy('request_log.at', 'desc')
    .orderBy('request_log.id', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: String(r.id),
    at: r.at,
    atText: r.at_text,
    userId: r.user_id,
    email: r.email,
    ip: r.ip,
    kind: r.kind,
    event: r.event,
    outcome: r.outcome,
    detail: r.detail,
  }));
}

export type LogPage = { found: true; rows: LogRow[]; nextBefore: string | null } | { found: false };

/**
 * One page, newest first. The cursor is the id of the last row of the previous page; its exact time
 * (microseconds, which a JavaScript Date would round) is read from the row, so no row at a page
 * border is skipped or shown twice. A cursor whose row is gone (purged, or made up) gives `found: false`.
 */
export async function readLogPage(
  db: Kysely<Database>,
  filter: ResolvedFilter,
  before: string | null,
  pageSize = LOG_PAGE_SIZE,
): Promise<LogPage> {
  let after: { at: string; id: string } | null = null;
  if (before !== null) {
    const cursor = await db
      .selectFrom('request_log')
      .select(['id', sql<string>`at::text`.as('at')])
      .where('id', '=', before)
      .executeTakeFirst();
    if (cursor === undefined) return { found: false };
    after = { at: cursor.at, id: String(cursor.id) };
  }
  const rows = await readRows(db, filter, after, pageSize + 1);
  const shown = rows.slice(0, pageSize);
  return { found: true, rows: shown, nextBefore: rows.length > pageSize ? (shown[shown.length - 1]?.id ?? null) : null };
}

/**
 * The whole filtered log, newest first, in batches read by keyset: each batch is one short query, so
 * an export of millions of rows holds neither a transaction nor more than one batch in memory.
 */
export async function* readWholeLog(db: Kysely<Database>, filter: ResolvedFilter, batchSize = 2000): AsyncGenerator<LogRow[]> {
  let after: { at: string; id: string } | null = null;
  for (;;) {
    const rows = await readRows(db, filter, after, batchSize);
    if (rows.length > 0) yield rows;
    if (rows.length < batchSize) return;
    const last = rows[rows.length - 1]!;
    after = { at: last.atText, id: last.id };
  }
}
